package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/switchboard/switchboard/internal/config"
)

// maxBody bounds a JSON request body; a WAV upload has maxUpload.
const (
	maxBody   = 1 << 20
	maxUpload = 16 << 20
)

// problem is an RFC 9457 problem detail; Errors name field paths (SPEC §2).
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []fieldError `json:"errors,omitempty"`
}

type fieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func writeProblem(w http.ResponseWriter, status int, detail string, errs ...fieldError) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Errors: errs})
}

// writeValidation answers 422 with every field error of a validation.
func writeValidation(w http.ResponseWriter, detail string, err error) {
	var errs []fieldError
	for _, f := range config.Fields(err) {
		errs = append(errs, fieldError{Path: f.Path, Message: f.Msg})
	}
	if errs == nil {
		errs = []fieldError{{Message: err.Error()}}
	}
	writeProblem(w, http.StatusUnprocessableEntity, detail, errs...)
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// errTooLarge is a body over the limit: 413.
var errTooLarge = errors.New("the body is too large")

// readBody reads a whole request body of at most limit bytes; a body cut
// by Harden's http.MaxBytesReader is errTooLarge too.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if tooLarge(err) {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// decodeJSON reads a JSON object into v, refusing unknown fields, trailing
// data and bodies over maxBody; the error names the field when it can.
// It writes the problem itself and returns false on error.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := readBody(r, maxBody)
	if errors.Is(err, errTooLarge) {
		writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", maxBody))
		return false
	}
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "the body could not be read")
		return false
	}
	if fe := unmarshalStrict(b, v); fe != nil {
		writeProblem(w, http.StatusBadRequest, "the body is not a valid JSON object for this resource", *fe)
		return false
	}
	return true
}

// unmarshalStrict decodes one JSON value into v, refusing unknown fields
// and trailing data; the error names the field by its path in the body
// ("forward.on", "rules[2].weight").
func unmarshalStrict(b []byte, v any) *fieldError {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	switch {
	case errors.Is(err, io.EOF):
		return &fieldError{Path: "", Message: "the body is empty: a JSON object is required"}
	case err != nil:
		var raw any
		rd := json.NewDecoder(bytes.NewReader(b))
		rd.UseNumber() // 1e400 is well-formed JSON, just no int
		if rd.Decode(&raw) != nil {
			return &fieldError{Path: "", Message: "malformed JSON: " + err.Error()}
		}
		if fe := locate(raw, reflect.TypeOf(v).Elem(), ""); fe != nil {
			return fe
		}
		return &fieldError{Path: "", Message: err.Error()}
	case dec.More():
		return &fieldError{Path: "", Message: "data after the JSON object"}
	}
	return nil
}

// locate finds where a well-formed JSON value does not fit type t: the
// first unknown field or value that does not decode, with its path.
func locate(raw any, t reflect.Type, path string) *fieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	fits := func(v any, t reflect.Type) error {
		b, _ := json.Marshal(v)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		return dec.Decode(reflect.New(t).Interface())
	}
	switch val := raw.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			fields := jsonFields(t)
			for _, k := range slices.Sorted(maps.Keys(val)) {
				ft, ok := fields[k]
				if !ok {
					return &fieldError{Path: join(k), Message: "unknown field"}
				}
				if fe := locate(val[k], ft, join(k)); fe != nil {
					return fe
				}
			}
			return nil
		case reflect.Map:
			for _, k := range slices.Sorted(maps.Keys(val)) {
				if fe := locate(val[k], t.Elem(), join(k)); fe != nil {
					return fe
				}
			}
			return nil
		}
	case []any:
		if t.Kind() == reflect.Slice {
			for i, e := range val {
				if fe := locate(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); fe != nil {
					return fe
				}
			}
			return nil
		}
	}
	if err := fits(raw, t); err != nil {
		msg := err.Error()
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = fmt.Sprintf("must be a %s, not %s", te.Type, te.Value)
		}
		return &fieldError{Path: path, Message: msg}
	}
	return nil
}

// jsonFields maps a struct's JSON names to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			maps.Copy(out, jsonFields(f.Type)) // promoted, as encoding/json does
			continue
		}
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
