package scim

import (
	"fmt"
	"net/http"
	"strconv"
)

// scimType values (RFC 7644 §3.12, table 9).
const (
	errInvalidFilter = "invalidFilter"
	errTooMany       = "tooMany"
	errUniqueness    = "uniqueness"
	errMutability    = "mutability"
	errInvalidSyntax = "invalidSyntax"
	errInvalidPath   = "invalidPath"
	errNoTarget      = "noTarget"
	errInvalidValue  = "invalidValue"
)

// scimError is a client-visible failure, rendered as an RFC 7644 §3.12
// error body. Anything else a handler returns is a store failure (500).
type scimError struct {
	status   int
	scimType string
	detail   string
}

func (e *scimError) Error() string {
	if e.scimType == "" {
		return fmt.Sprintf("scim %d: %s", e.status, e.detail)
	}
	return fmt.Sprintf("scim %d %s: %s", e.status, e.scimType, e.detail)
}

func errorf(status int, scimType, format string, args ...any) *scimError {
	return &scimError{status: status, scimType: scimType, detail: fmt.Sprintf(format, args...)}
}

func badRequest(scimType, format string, args ...any) *scimError {
	return errorf(http.StatusBadRequest, scimType, format, args...)
}

func notFound(format string, args ...any) *scimError {
	return errorf(http.StatusNotFound, "", format, args...)
}

// errorBody is the wire form; status is a string per RFC 7644 §3.12.
type errorBody struct {
	Schemas  []string `json:"schemas"`
	Status   string   `json:"status"`
	ScimType string   `json:"scimType,omitempty"`
	Detail   string   `json:"detail,omitempty"`
}

func (e *scimError) body() errorBody {
	return errorBody{
		Schemas:  []string{urnError},
		Status:   strconv.Itoa(e.status),
		ScimType: e.scimType,
		Detail:   e.detail,
	}
}
