// Package store holds learnerlink's desired state: identities (SCIM Users),
// groups, memberships, and the links between an identity and the learner it
// is projected to in each target.
//
// Okta (or Entra) is the source of truth; this store records what it last
// told us. Every change to what an identity should look like in a target
// bumps the identity's Version and marks it pending in the same atomic
// write. The outbound queue is only a trigger: a worker always reads the
// latest desired state, so a lost, duplicated or reordered message costs at
// most a redundant sync. A crash between the store write and the enqueue is
// healed by the pending index: a sweeper re-queues identities that have been
// pending longer than a threshold (ListPending), and the worker clears the
// mark once it has synced that exact version (ClearPending).
//
// A group write can change many identities at once (each member's projected
// state carries the group's name). Where one atomic write cannot hold them
// all, the store keeps a durable marker instead and the sweeper completes
// the bumps (FinishGroupWrites); see Groups.UpdateGroup.
//
// Implementations: store/bolt (embedded, on disk, for local runs) and
// store/dynamo (Amazon DynamoDB single table). Both pass storetest.Run.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors every implementation returns (possibly wrapped); test with errors.Is.
var (
	ErrNotFound         = errors.New("store: not found")
	ErrUserNameTaken    = errors.New("store: userName already exists")
	ErrDisplayNameTaken = errors.New("store: group displayName already exists")
	ErrExists           = errors.New("store: id already exists")
	ErrVersionConflict  = errors.New("store: version conflict")
)

// MissingMembersError reports member ids that name no live identity. It
// wraps ErrNotFound.
type MissingMembersError struct{ IDs []string }

func (e *MissingMembersError) Error() string {
	return fmt.Sprintf("store: members not found: %s", strings.Join(e.IDs, ", "))
}
func (e *MissingMembersError) Unwrap() error { return ErrNotFound }

// Identity is the desired state of one person.
type Identity struct {
	ID         string
	UserName   string // unique, compared case-insensitively
	ExternalID string // the IdP's id (Okta user id); not unique by contract
	Active     bool
	// Deleted marks a tombstone left by DELETE /Users: the SCIM API answers
	// 404 for it and its userName is free again, but workers still see it so
	// the learner is deactivated (never deleted unless configured).
	Deleted bool
	// Resource is the SCIM User as JSON, without meta, groups or password.
	Resource json.RawMessage
	// Version is set by the store: 1 on create, +1 on every change,
	// including membership changes and renames of its groups (the User's
	// groups, with their names, are part of it).
	// Created and Modified are set by the store too (UTC), and written back
	// into the Identity passed to a write, as are Group's.
	Version  int64
	Created  time.Time
	Modified time.Time
}

// Group is an IdP group pushed to us (Okta Push Groups).
type Group struct {
	ID          string
	DisplayName string // unique, compared case-insensitively
	ExternalID  string
	// Resource is the SCIM Group as JSON, without meta and members.
	Resource json.RawMessage
	Version  int64
	Created  time.Time
	Modified time.Time
}

// Member is one membership as seen from either side.
type Member struct {
	GroupID     string
	GroupName   string
	UserID      string
	UserDisplay string
}

// Changed names an identity whose desired state changed as a side effect of
// a group write; the caller queues a sync intent for each.
type Changed struct {
	ID      string
	Version int64
}

// Link ties an identity to its learner in one target.
type Link struct {
	IdentityID    string
	Target        string // target name, e.g. "absorb"
	LearnerID     string // the target's id for the learner
	ExternalID    string // what we wrote as the learner's external id
	SyncedVersion int64  // identity version last fully synced
	Hash          string // hash of what was pushed, to skip no-op writes
	// Applied names the enrollment rules already carried out for this
	// learner, so a rule fires once when it starts to match, not on every sync.
	Applied []string
	Updated time.Time
}

// Pending is an identity whose latest version is not yet synced.
type Pending struct {
	ID      string
	Version int64
	// Since is when it last became pending: the Modified time of the
	// identity write, or of the group write that changed its membership.
	Since time.Time
}

// Page is a window of a listing. Next is empty on the last page.
type Page[T any] struct {
	Items []T
	Next  string
}

// Identities is the identity part of the store.
type Identities interface {
	// CreateIdentity stores a new identity with Version 1 and marks it
	// pending. ErrUserNameTaken if the userName (case-insensitively) is used
	// by a live identity; ErrExists if the ID is used by any identity,
	// tombstones included (so an identity's versions never restart).
	CreateIdentity(ctx context.Context, id *Identity) error
	// GetIdentity returns the identity, tombstones included.
	GetIdentity(ctx context.Context, id string) (*Identity, error)
	// GetIdentityByUserName finds a live identity case-insensitively.
	GetIdentityByUserName(ctx context.Context, userName string) (*Identity, error)
	// FindIdentitiesByExternalID returns live identities with that externalId.
	FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*Identity, error)
	// FindTombstonesByExternalID returns the tombstones (Deleted) whose
	// identity carried that externalId when it was deleted; nil for an
	// empty externalId. Workers use it to tell which incarnation of a
	// person deleted and provisioned again is the newest. Tombstones
	// written before a store supported this are not found (acceptable:
	// they are long synced).
	FindTombstonesByExternalID(ctx context.Context, externalID string) ([]*Identity, error)
	// UpdateIdentity replaces a live identity if its stored Version equals
	// expectedVersion (else ErrVersionConflict), sets id.Version to
	// expectedVersion+1 and marks it pending.
	UpdateIdentity(ctx context.Context, id *Identity, expectedVersion int64) error
	// DeleteIdentity turns a live identity into a tombstone: frees its
	// userName, removes its memberships, bumps its version, marks it pending.
	DeleteIdentity(ctx context.Context, id string, expectedVersion int64) (*Identity, error)
	// ListIdentities lists live identities in a stable order (by ID), at
	// most limit per page, starting after the cursor (empty for the first).
	ListIdentities(ctx context.Context, cursor string, limit int) (Page[*Identity], error)
	// CountIdentities counts live identities.
	CountIdentities(ctx context.Context) (int, error)
}

// Groups is the group and membership part of the store.
type Groups interface {
	// CreateGroup stores a group (Version 1) with its initial members. Every
	// member must be a live identity (*MissingMembersError otherwise, and
	// nothing is written). Returns the identities whose version it bumped.
	CreateGroup(ctx context.Context, g *Group, members []string) ([]Changed, error)
	GetGroup(ctx context.Context, id string) (*Group, error)
	GetGroupByDisplayName(ctx context.Context, displayName string) (*Group, error)
	// UpdateGroup replaces the group's attributes if its Version equals
	// expectedVersion, adds and removes members and bumps the group's
	// version. It bumps the version of (and marks pending) every identity
	// whose desired state changed, each once, and returns them: those whose
	// membership changed and, when DisplayName changes (compared exactly,
	// case included, as members see it), every other member as well.
	// Adding a present member or removing an absent one is not a change;
	// other attributes are not part of a member's state. A rejected write
	// (ErrVersionConflict, ErrDisplayNameTaken, *MissingMembersError,
	// ErrNotFound) changes nothing.
	//
	// Crash semantics. A store that can (bolt) writes everything in one
	// atomic write. One that cannot for a large change (dynamo: 100 items
	// per transaction) commits the group's own write, with as much as fits,
	// first; every later part keeps each membership change together with
	// its identity's bump. If the writer fails or dies in between:
	//   - membership changes not yet applied are lost with the call, which
	//     was not acknowledged; the caller's retry (diffed against the
	//     stored members) applies them;
	//   - a rename whose member bumps did not fit in the first part leaves
	//     a durable marker written in that same first part; the bumps move
	//     it forward and the last one removes it, and FinishGroupWrites
	//     (the sweeper) completes them for the group's members if the
	//     writer stalls. Each member is bumped once by the call, and
	//     possibly once more by the completion: a redundant sync, never a
	//     lost one.
	//     A later rename or DeleteGroup takes over an unfinished one (it
	//     bumps every member anyway).
	UpdateGroup(ctx context.Context, g *Group, expectedVersion int64, add, remove []string) ([]Changed, error)
	// DeleteGroup removes the group and its memberships.
	DeleteGroup(ctx context.Context, id string) ([]Changed, error)
	ListGroups(ctx context.Context, cursor string, limit int) (Page[*Group], error)
	CountGroups(ctx context.Context) (int, error)
	// Members lists a group's members (UserID, UserDisplay filled).
	Members(ctx context.Context, groupID string) ([]Member, error)
	// GroupsOf lists an identity's groups (GroupID, GroupName filled).
	GroupsOf(ctx context.Context, userID string) ([]Member, error)
}

// Links is the identity-to-learner part of the store.
type Links interface {
	GetLink(ctx context.Context, identityID, target string) (*Link, error)
	// PutLink writes the link unless the stored one has a higher
	// SyncedVersion (ErrVersionConflict): an old worker never rolls back a
	// newer sync.
	PutLink(ctx context.Context, l *Link) error
	// ListLinks lists one target's links, for reconciliation.
	ListLinks(ctx context.Context, target, cursor string, limit int) (Page[*Link], error)
}

// Sync is the pending index that heals lost intents.
type Sync interface {
	// ListPending returns identities pending since before olderThan.
	ListPending(ctx context.Context, olderThan time.Time, limit int) ([]Pending, error)
	// ClearPending clears the mark if the identity is still at version.
	ClearPending(ctx context.Context, id string, version int64) error
	// FinishGroupWrites completes group writes whose member bumps were
	// interrupted (see Groups.UpdateGroup) and have made no progress since
	// before olderThan, at most limit groups a call. It returns the
	// identities it bumped, for the caller to queue; they are pending too.
	// A store whose group writes are atomic has none and returns nil.
	FinishGroupWrites(ctx context.Context, olderThan time.Time, limit int) ([]Changed, error)
}

// AuditRecord says what learnerlink did to a target and why. It never
// holds attribute values (no PII beyond ids), tokens or secrets.
type AuditRecord struct {
	IdentityID    string
	Time          time.Time
	Target        string // target name; empty for store-only actions
	Actor         string // "worker", "rules", "reconcile", "scim", "hooks"
	Action        string // e.g. "learner.create", "learner.deactivate", "enroll"
	Detail        string // why: rule name, fields changed (names, not values)
	SourceVersion int64  // identity version that caused it
	Reason        string // the intent's reason
	RequestID     string
	Result        string // "ok" or "error: ..."
}

// Audit is the append-only trail, newest first when listed.
type Audit interface {
	AppendAudit(ctx context.Context, r *AuditRecord) error
	ListAudit(ctx context.Context, identityID string, limit int) ([]AuditRecord, error)
}

// Doc is a small document kept for the control plane: reconciliation
// checkpoints and reports, the review list, seen hook-event ids. Its Key is
// "<kind>/<id>"; kinds are listed separately.
type Doc struct {
	Key     string
	Value   []byte // at most 64 KiB
	Version int64  // set by the store: 1 on create, +1 on every put
	// Expires, if set, is when the document stops existing (DynamoDB TTL;
	// reads treat an expired document as absent even before it is purged).
	Expires time.Time
}

// Docs stores Docs with optimistic concurrency.
type Docs interface {
	// GetDoc returns the document or ErrNotFound (also when expired).
	GetDoc(ctx context.Context, key string) (*Doc, error)
	// PutDoc writes d if the stored version equals expectedVersion (0: it
	// must not exist, or be expired), else ErrVersionConflict; it sets
	// d.Version to the new version.
	PutDoc(ctx context.Context, d *Doc, expectedVersion int64) error
	// DeleteDoc removes the document; absent is not an error.
	DeleteDoc(ctx context.Context, key string) error
	// ListDocs lists one kind's live documents in key order.
	ListDocs(ctx context.Context, kind, cursor string, limit int) (Page[*Doc], error)
}

// Store is everything; consumers should ask for the smallest part they use.
type Store interface {
	Identities
	Groups
	Links
	Sync
	Audit
	Docs
	Close() error
}

// FoldUserName is how userName and displayName uniqueness compares.
func FoldUserName(s string) string { return strings.ToLower(s) }
