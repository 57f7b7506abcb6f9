package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
)

// backup streams a backup archive of the installation (operator only). The
// status is sent before the archive is written: an archive that fails
// mid-way ends the connection without its end-of-archive marker, so it can
// never be mistaken for a whole one (restore refuses it).
func (s *Server) backup(c echo.Context) error {
	if s.Backup == nil {
		return newError(http.StatusConflict, "backup_unavailable",
			"this relay's store is Dgraph: back it up with Dgraph's export (deploy/README.md, Backups)")
	}
	h := c.Response().Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Disposition", `attachment; filename="switchyard-`+time.Now().UTC().Format("20060102T150405Z")+`.tar"`)
	h.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(http.StatusOK)
	if err := s.Backup(c.Response()); err != nil {
		s.log.Error("backup failed mid-way; the archive was cut off", "err", err)
		panic(http.ErrAbortHandler)
	}
	s.log.Info("backup written")
	return nil
}
