package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/tee"
)

// statusOf is the HTTP status that goes with an error code.
func statusOf(code string) int {
	switch code {
	case CodeNotFound:
		return http.StatusNotFound
	case CodeExists, CodeInputFull, CodeUpgradeRefused:
		return http.StatusConflict
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnsupported:
		return http.StatusUnprocessableEntity
	case CodeBadRequest, CodeNotRingbuf, CodeInvalidConfig:
		return http.StatusBadRequest
	case CodeOpenFailed:
		return http.StatusUnprocessableEntity
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethod:
		return http.StatusMethodNotAllowed
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeClosed:
		return http.StatusServiceUnavailable
	case CodeTimeout:
		return http.StatusGatewayTimeout
	case CodeUpgradeFailed:
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// newError is an *Error with the status of its code.
func newError(code, format string, args ...any) *Error {
	return &Error{Message: fmt.Sprintf(format, args...), Code: code, Status: statusOf(code)}
}

// errorFor classifies an error from a decoder or the daemon. op says the
// error came from an operation that opens devices (attach, swap, frontend
// swap, reload): an error that is none of the known kinds is then a device
// that could not be opened (422), where elsewhere it is our bug (500).
func errorFor(err error, op bool) *Error {
	var (
		ae   *Error
		mbe  *http.MaxBytesError
		list config.ErrorList
		one  *config.Error
	)
	switch {
	case errors.As(err, &ae):
		if ae.Status == 0 {
			ae.Status = statusOf(ae.Code)
		}
		return ae
	case errors.As(err, &mbe):
		return newError(CodeTooLarge, "request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &list) && len(list) > 0:
		return configError(list)
	case errors.As(err, &one):
		return configError(config.ErrorList{one})
	case errors.Is(err, tee.ErrNotFound):
		return newError(CodeNotFound, "%s", err)
	case errors.Is(err, tee.ErrExists):
		return newError(CodeExists, "%s", err)
	case errors.Is(err, chardev.ErrNotPermitted):
		return newError(CodeForbidden, "%s", err)
	case chardev.IsUnsupported(err):
		return newError(CodeUnsupported, "%s", err)
	case errors.Is(err, tee.ErrInputFull):
		return newError(CodeInputFull, "%s", err)
	case errors.Is(err, daemon.ErrInvalid):
		return newError(CodeBadRequest, "%s", err)
	case errors.Is(err, context.DeadlineExceeded):
		return newError(CodeTimeout, "%s", err)
	case errors.Is(err, tee.ErrClosed), errors.Is(err, context.Canceled):
		return newError(CodeClosed, "%s", err)
	case op:
		return newError(CodeOpenFailed, "%s", err)
	}
	return newError(CodeInternal, "%s", err)
}

// configError lists every config problem in Details, one per line, and
// names the first (and how many more) in the message.
func configError(list config.ErrorList) *Error {
	e := newError(CodeInvalidConfig, "%s", list[0].Error())
	if len(list) > 1 {
		e.Message += fmt.Sprintf(" (and %d more problems)", len(list)-1)
	}
	for _, item := range list {
		e.Details = append(e.Details, item.Error())
	}
	return e
}
