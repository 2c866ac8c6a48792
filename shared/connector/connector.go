// Package connector is the contract between learnerlink's workers and a
// target system (an LMS or another directory). Like dex's connectors, the
// base interface is small and optional capabilities are separate
// interfaces a worker discovers with a type assertion.
//
// A connector is stateless about sync progress: the worker owns the link
// (store.Link) and tells the connector which learner to act on. Connectors
// classify their failures with *Error so the worker knows whether to retry,
// wait, or park the intent in the dead-letter queue.
package connector

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Learner is a target account as learnerlink projects it. Fields holds the
// mapped target attributes (e.g. "departmentName", "jobTitle",
// "employeeNumber", "supervisorExternalId", "location", "customFields.string1").
type Learner struct {
	ID         string // the target's id; empty before create
	ExternalID string // learnerlink writes the IdP's user id here
	UserName   string
	Email      string
	FirstName  string
	LastName   string
	Active     bool
	Fields     map[string]string
}

// KeyKind names a lookup key.
type KeyKind string

const (
	KeyExternalID     KeyKind = "externalId"
	KeyUserName       KeyKind = "userName"
	KeyEmail          KeyKind = "email"
	KeyEmployeeNumber KeyKind = "employeeNumber"
)

// Key is one lookup.
type Key struct {
	Kind  KeyKind
	Value string
}

// Connector is what every target supports.
type Connector interface {
	// Get reads a learner by the target's id; *Error with NotFound if gone.
	Get(ctx context.Context, id string) (*Learner, error)
	// Find returns every learner matching the key (0, 1 or more).
	Find(ctx context.Context, key Key) ([]Learner, error)
	// Create creates the learner and returns its target id.
	Create(ctx context.Context, l Learner) (string, error)
	// Update makes the learner (l.ID) carry l's values, active state
	// included. Fields absent from l.Fields are left as they are.
	Update(ctx context.Context, l Learner) error
}

// GroupSetter is implemented by targets with learner groups.
type GroupSetter interface {
	// SetGroups makes the learner a member of exactly these named groups
	// among the groups learnerlink manages.
	SetGroups(ctx context.Context, learnerID string, groups []string) error
}

// Enrollment is a course, curriculum or learning path to enroll in.
type Enrollment struct {
	Kind string // "course" or "curriculum"
	ID   string // the target's id for it
}

// Enroller is implemented by targets that take enrollments.
type Enroller interface {
	Enroll(ctx context.Context, learnerID string, e Enrollment) error
}

// Lister is implemented by targets that can stream all learners, for
// reconciliation.
type Lister interface {
	// List returns one page; cursor "" starts, Next "" ends.
	List(ctx context.Context, cursor string) ([]Learner, string, error)
}

// Error classifies a target failure.
type Error struct {
	Op         string
	Status     int           // HTTP status, 0 for transport errors
	Retryable  bool          // worth trying again later
	RetryAfter time.Duration // the target's hint, 0 if none
	NotFound   bool
	Conflict   bool // e.g. username already taken by another learner
	Err        error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: status %d: %v", e.Op, e.Status, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// IsRetryable reports whether err is worth retrying: retryable *Errors and
// anything unclassified (network trouble) are; classified permanent
// failures are not.
func IsRetryable(err error) bool {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Retryable
	}
	return !errors.Is(err, context.Canceled)
}

// IsNotFound reports a target-side 404.
func IsNotFound(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.NotFound
}

// RetryAfterOf returns the target's Retry-After hint, if any.
func RetryAfterOf(err error) time.Duration {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.RetryAfter
	}
	return 0
}
