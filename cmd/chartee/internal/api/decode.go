package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
)

// Request bodies are decoded here, apart from any I/O, so that they are
// tested and fuzzed directly. Every error is an *Error with a 4xx status.

// decodeAttach decodes the body of POST /v1/tees/{tee}/backends: a backend
// with the keys of the config file.
func decodeAttach(body []byte) (*config.Backend, error) {
	if err := wantJSONObject("request body", body); err != nil {
		return nil, err
	}
	b, err := config.DecodeBackendJSON(body)
	if err != nil {
		return nil, specError(err)
	}
	return b, nil
}

// frontendSwapRequest is the body of POST /v1/tees/{tee}/frontend/swap.
type frontendSwapRequest struct {
	Spec json.RawMessage `json:"spec"`
}

// decodeFrontendSwap decodes {"spec": {...device...}}.
func decodeFrontendSwap(body []byte) (*config.Device, error) {
	var req frontendSwapRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if err := wantJSONObject("spec", req.Spec); err != nil {
		return nil, err
	}
	d, err := config.DecodeDeviceJSON(req.Spec)
	if err != nil {
		return nil, specError(err)
	}
	return d, nil
}

// decodeSwap decodes a SwapRequest for backend. The spec's name defaults
// to backend and must equal it when given.
func decodeSwap(body []byte, backend string) (*config.Backend, tee.SwapOptions, error) {
	var req SwapRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, tee.SwapOptions{}, err
	}
	mode, err := tee.ParseSwapMode(req.Mode)
	if err != nil {
		return nil, tee.SwapOptions{}, newError(CodeBadRequest, "%s", err)
	}
	spec, err := specNamed(req.Spec, backend)
	if err != nil {
		return nil, tee.SwapOptions{}, err
	}
	b, err := config.DecodeBackendJSON(spec)
	if err != nil {
		return nil, tee.SwapOptions{}, specError(err)
	}
	if b.Name != backend {
		return nil, tee.SwapOptions{}, newError(CodeBadRequest,
			"spec name %q does not match backend %q: a swap replaces a backend, it cannot rename it", b.Name, backend)
	}
	return b, tee.SwapOptions{Mode: mode, DrainTimeout: req.DrainTimeout.D()}, nil
}

// specNamed checks the name in a swap spec, adding it when missing. It is
// inserted as the first key, leaving the rest of the text as sent.
func specNamed(spec json.RawMessage, backend string) (json.RawMessage, error) {
	if err := wantObject("spec", spec); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(spec, &fields); err != nil {
		return nil, newError(CodeBadRequest, "spec: %s", jsonProblem(err))
	}
	if raw, ok := fields["name"]; ok {
		var name string
		if err := json.Unmarshal(raw, &name); err != nil {
			return nil, newError(CodeBadRequest, "spec: name: want a string")
		}
		if name != backend {
			return nil, newError(CodeBadRequest,
				"spec name %q does not match backend %q: a swap replaces a backend, it cannot rename it", name, backend)
		}
		return spec, nil
	}
	quoted, err := json.Marshal(backend)
	if err != nil {
		return nil, newError(CodeBadRequest, "backend name %q: %s", backend, err)
	}
	rest := bytes.TrimLeft(spec, " \t\r\n")[1:] // after the opening brace
	out := append([]byte(`{"name":`), quoted...)
	if !bytes.HasPrefix(bytes.TrimLeft(rest, " \t\r\n"), []byte("}")) {
		out = append(out, ',')
	}
	return append(out, rest...), nil
}

// decodeStrict decodes one JSON object into v, refusing unknown keys and
// anything after the object, so a typo ("drain_timout") is an error and
// not silently ignored.
func decodeStrict(body []byte, v any) error {
	if err := wantObject("request body", body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newError(CodeBadRequest, "request body: %s", jsonProblem(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return newError(CodeBadRequest, "request body: unexpected data after the JSON object")
	}
	return nil
}

// wantObject checks that data is (or at least starts as) a JSON object.
func wantObject(what string, data []byte) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0 || bytes.Equal(bytes.TrimRight(trimmed, " \t\r\n"), []byte("null")):
		return newError(CodeBadRequest, "%s is missing: want a JSON object", what)
	case trimmed[0] != '{':
		return newError(CodeBadRequest, "%s: want a JSON object", what)
	}
	return nil
}

// wantJSONObject checks that data is one well-formed JSON object, so that
// broken JSON is a bad request rather than a config problem.
func wantJSONObject(what string, data []byte) error {
	if err := wantObject(what, data); err != nil {
		return err
	}
	if !json.Valid(data) {
		var v any
		err := json.Unmarshal(data, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return newError(CodeBadRequest, "%s: %s", what, jsonProblem(err))
	}
	return nil
}

// jsonProblem words a JSON decoding error without the "json: " prefix and
// with the byte offset of a syntax error.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "truncated JSON"
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		return fmt.Sprintf("%s: want a %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
	}
	msg := err.Error()
	if len(msg) > 6 && msg[:6] == "json: " {
		msg = msg[6:]
	}
	return msg
}

// specError turns what the config decoder found into an invalid_config
// error listing every problem.
func specError(err error) *Error {
	var list config.ErrorList
	var one *config.Error
	switch {
	case errors.As(err, &list) && len(list) > 0:
		return configError(list)
	case errors.As(err, &one):
		return configError(config.ErrorList{one})
	}
	return newError(CodeInvalidConfig, "%s", err)
}

// dataQuery is the query of GET .../data.
type dataQuery struct {
	Offset uint64
	Follow bool
}

// parseDataQuery reads offset (default 0: from the oldest kept byte) and
// follow. Unknown parameters are refused, so "folow=1" is not silently a
// one-shot read.
func parseDataQuery(q url.Values) (dataQuery, error) {
	var dq dataQuery
	for key, vals := range q {
		if len(vals) != 1 {
			return dq, newError(CodeBadRequest, "query parameter %q given %d times", key, len(vals))
		}
		v := vals[0]
		switch key {
		case "offset":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return dq, newError(CodeBadRequest, "offset %q: want a byte offset (a non-negative integer)", v)
			}
			dq.Offset = n
		case "follow":
			if v == "" {
				dq.Follow = true
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return dq, newError(CodeBadRequest, "follow %q: want 1 or 0", v)
			}
			dq.Follow = b
		default:
			return dq, newError(CodeBadRequest, "unknown query parameter %q (want offset, follow)", key)
		}
	}
	return dq, nil
}
