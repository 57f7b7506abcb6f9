package deploycheck

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Ignore is a .dockerignore, read with the code BuildKit reads it with.
type Ignore struct {
	pm *patternmatcher.PatternMatcher
}

// ReadIgnore reads a .dockerignore file.
func ReadIgnore(file string) (*Ignore, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &Ignore{pm: pm}, nil
}

// Excludes reports whether the build context leaves out rel (a path
// relative to the context's root, with slashes).
func (ig *Ignore) Excludes(rel string) bool {
	m, err := ig.pm.MatchesOrParentMatches(rel)
	return err == nil && m
}

// mayInclude reports whether an excluded folder may still hold a file that
// a "!" pattern lets through, so that the walk must go into it.
func (ig *Ignore) mayInclude(dir string) bool {
	for _, p := range ig.pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String(), dir+"/") {
			return true
		}
	}
	return false
}

// CopyContext copies into dst the files of the build context rooted at src
// that the .dockerignore lets through, and returns how many it copied.
func CopyContext(src, dst string, ig *Ignore) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if ig.Excludes(rel) {
			if d.IsDir() && !ig.mayInclude(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			n++
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			n++
			return copyFile(p, target, info.Mode().Perm())
		}
		return nil
	})
	return n, err
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
