package plugintest

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints one row per guest and one column per case, then what
// each failure (and each checked never-claim) was.
func WriteTable(w io.Writer, reports []Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "guest\tlanguage\t%s\tcalls\n", strings.Join(Cases, "\t"))
	for _, r := range reports {
		fmt.Fprintf(tw, "%s\t%s", r.Profile.Use, r.Profile.Language)
		if r.Err != nil {
			fmt.Fprintf(tw, "\tnot loaded%s\t-\n", strings.Repeat("\t", len(Cases)-1))
			continue
		}
		for _, c := range r.Cases {
			v := "pass"
			if !c.Pass {
				v = "FAIL"
			}
			fmt.Fprintf(tw, "\t%s", v)
		}
		fmt.Fprintf(tw, "\t%d\n", r.Calls)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range reports {
		where := r.Profile.Use + " (" + r.Profile.Dir + ")"
		if r.Err != nil {
			fmt.Fprintf(w, "%s: not loaded: %v\n", where, r.Err)
		}
		for _, c := range r.Cases {
			switch {
			case !c.Pass:
				fmt.Fprintf(w, "%s: %s FAILED: %s\n", where, c.Name, c.Note)
			case c.Note != "":
				fmt.Fprintf(w, "%s: %s: %s\n", where, c.Name, c.Note)
			}
		}
	}
	return nil
}
