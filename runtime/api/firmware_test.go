package api

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"testing"
)

// FuzzReadUpload feeds arbitrary multipart bodies to the upload reader: it
// never panics, refuses with an API error, and what it accepts has a model
// and a version before an image whose reading fails only as a body error.
func FuzzReadUpload(f *testing.F) {
	var good bytes.Buffer
	mw := multipart.NewWriter(&good)
	mw.SetBoundary("b0undary")
	mw.WriteField("model", "esp32")
	mw.WriteField("version", "1.5.0")
	w, _ := mw.CreateFormFile("image", "fw.bin")
	w.Write([]byte("image bytes"))
	mw.WriteField("notes", "late")
	mw.Close()
	f.Add(good.Bytes())
	f.Add([]byte("--b0undary\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\nx\r\n--b0undary--\r\n"))
	f.Add([]byte("--b0undary--\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		u, image, err := readUpload(multipart.NewReader(bytes.NewReader(body), "b0undary"))
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Status != 400 {
				t.Fatalf("refusal %v is not a 400 API error", err)
			}
			return
		}
		if u.Model == "" || u.Version == "" || len(u.Notes) > maxUploadField || image == nil {
			t.Fatalf("accepted %+v", u)
		}
		if _, err := io.Copy(io.Discard, image); err != nil {
			var bad *bodyError
			if !errors.As(err, &bad) {
				t.Fatalf("image read failed with %T %v, not a body error", err, err)
			}
		}
	})
}
