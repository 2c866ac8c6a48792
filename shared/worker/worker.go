// Package worker turns sync intents into target writes.
//
// For every intent it reads the identity's *latest* desired state, maps it
// to the learner the target should have, compares that with what the link
// says was last pushed, and calls the connector only for what differs.
// Intents are triggers, not data: a duplicate, a retry or an out-of-order
// delivery of an old version finds the link already at the latest version
// and costs no target write, and several changes queued for one identity
// cost one write (coalescing).
//
// No duplicate learner is ever created: before creating, the worker looks
// the learner up by the external id it writes (the IdP's user id), so a
// worker that died between the target's create and the link write adopts
// its own learner on the next attempt. One identity is never processed by
// two workers at once because the queue delivers one message per identity
// (the FIFO message group) at a time.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/retry"
	"github.com/learnerlink/learnerlink/shared/rules"
	"github.com/learnerlink/learnerlink/shared/store"
)

// Store is what the worker needs of the desired-state store.
type Store interface {
	GetIdentity(ctx context.Context, id string) (*store.Identity, error)
	FindIdentitiesByExternalID(ctx context.Context, externalID string) ([]*store.Identity, error)
	GetIdentityByUserName(ctx context.Context, userName string) (*store.Identity, error)
	GroupsOf(ctx context.Context, userID string) ([]store.Member, error)
	GetLink(ctx context.Context, identityID, target string) (*store.Link, error)
	PutLink(ctx context.Context, l *store.Link) error
	ClearPending(ctx context.Context, id string, version int64) error
	AppendAudit(ctx context.Context, r *store.AuditRecord) error
}

// Target is one system learners are projected to.
type Target struct {
	Name    string
	Conn    connector.Connector
	Mapping mapping.Config
	Rules   rules.Config
	// AdoptBy lists the keys, in order, by which an unlinked learner that
	// existed before the integration is adopted. The external id is always
	// tried first (it is how we find our own earlier creates).
	AdoptBy []connector.KeyKind
}

// Config tunes the worker.
type Config struct {
	Backoff retry.Backoff // for retryable failures without a Retry-After
	Logger  *slog.Logger
	Now     func() time.Time
	Rand    func() float64
}

// Worker syncs identities to targets. It holds no mutable state of its own
// and is safe for concurrent use.
type Worker struct {
	st      Store
	targets []Target
	cfg     Config
}

// New returns a worker over the given targets.
func New(st Store, targets []Target, cfg Config) (*Worker, error) {
	if len(targets) == 0 {
		return nil, errors.New("worker: no targets")
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if t.Name == "" || t.Conn == nil {
			return nil, errors.New("worker: target needs a name and a connector")
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("worker: duplicate target %q", t.Name)
		}
		seen[t.Name] = true
	}
	if cfg.Backoff.Base == 0 {
		cfg.Backoff = retry.Backoff{Base: time.Second, Max: 5 * time.Minute}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	return &Worker{st: st, targets: targets, cfg: cfg}, nil
}

// Verdict is what to do with a message after processing.
type Verdict int

const (
	Ack   Verdict = iota // done (or nothing to do)
	Retry                // try again after Delay
	Park                 // permanent failure: dead-letter it with Reason
)

// Outcome is the verdict for one message.
type Outcome struct {
	Message queue.Message
	Verdict Verdict
	Delay   time.Duration
	Reason  string
}

// Process handles a batch. Messages for the same identity are coalesced:
// the identity is synced once and every one of its messages gets the same
// verdict, which keeps a FIFO group's order intact when a sync fails.
func (w *Worker) Process(ctx context.Context, msgs []queue.Message) []Outcome {
	type group struct {
		intent queue.Intent
		idx    []int
	}
	var order []string
	groups := map[string]*group{}
	for i, m := range msgs {
		key := m.IdentityID
		g, ok := groups[key]
		if !ok {
			g = &group{intent: m.Intent}
			groups[key] = g
			order = append(order, key)
		} else if g.intent.Target != m.Target {
			g.intent.Target = "" // mixed targets: sync all
		}
		if m.Version > g.intent.Version {
			g.intent.Version, g.intent.Reason, g.intent.RequestID = m.Version, m.Reason, m.RequestID
		}
		g.idx = append(g.idx, i)
	}
	out := make([]Outcome, len(msgs))
	for _, key := range order {
		g := groups[key]
		receives := 0
		for _, i := range g.idx {
			receives = max(receives, msgs[i].Receives)
		}
		verdict, delay, reason := w.classify(w.Sync(ctx, g.intent), receives)
		for _, i := range g.idx {
			out[i] = Outcome{Message: msgs[i], Verdict: verdict, Delay: delay, Reason: reason}
		}
	}
	return out
}

func (w *Worker) classify(err error, receives int) (Verdict, time.Duration, string) {
	if err == nil {
		return Ack, 0, ""
	}
	if connector.IsRetryable(err) {
		d := connector.RetryAfterOf(err)
		if d <= 0 {
			d = w.cfg.Backoff.Delay(receives, w.cfg.Rand)
		}
		return Retry, d, err.Error()
	}
	return Park, 0, err.Error()
}

// Sync brings one identity up to date in its targets (or in intent.Target).
func (w *Worker) Sync(ctx context.Context, in queue.Intent) error {
	ident, err := w.st.GetIdentity(ctx, in.IdentityID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never existed here (e.g. a hand-made intent): nothing to project
	}
	if err != nil {
		return fmt.Errorf("worker: load identity: %w", err)
	}
	groups, err := w.st.GroupsOf(ctx, ident.ID)
	if err != nil {
		return fmt.Errorf("worker: load groups: %w", err)
	}
	var errs []error
	for i := range w.targets {
		t := &w.targets[i]
		if in.Target != "" && in.Target != t.Name {
			continue
		}
		if err := w.syncTarget(ctx, t, in, ident, groups); err != nil {
			errs = append(errs, fmt.Errorf("target %s: %w", t.Name, err))
		}
	}
	if len(errs) > 0 {
		err := joinClassified(errs)
		if !connector.IsRetryable(err) {
			// The intent goes to the dead-letter queue; clearing the mark
			// keeps the sweeper from retrying a permanent failure forever.
			// The next change, or a redrive, marks it again.
			if cerr := w.st.ClearPending(ctx, ident.ID, ident.Version); cerr != nil && !errors.Is(cerr, store.ErrVersionConflict) {
				w.cfg.Logger.WarnContext(ctx, "clear pending failed", "identity", ident.ID, "err", cerr)
			}
		}
		return err
	}
	if err := w.st.ClearPending(ctx, ident.ID, ident.Version); err != nil && !errors.Is(err, store.ErrVersionConflict) {
		return fmt.Errorf("worker: clear pending: %w", err)
	}
	return nil
}

// joinClassified keeps the most urgent classification: if any target can
// be retried the message is retried (a permanent failure in one target
// must not stop another from converging); the longest Retry-After wins.
func joinClassified(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	retryable := false
	var after time.Duration
	for _, e := range errs {
		if connector.IsRetryable(e) {
			retryable = true
			after = max(after, connector.RetryAfterOf(e))
		}
	}
	return &connector.Error{Op: "sync", Retryable: retryable, RetryAfter: after, Err: errors.Join(errs...)}
}

func (w *Worker) syncTarget(ctx context.Context, t *Target, in queue.Intent, ident *store.Identity, groups []store.Member) error {
	link, err := w.st.GetLink(ctx, ident.ID, t.Name)
	if errors.Is(err, store.ErrNotFound) {
		link = nil
	} else if err != nil {
		return fmt.Errorf("load link: %w", err)
	}
	if link != nil && link.SyncedVersion >= ident.Version {
		return nil // stale or duplicate intent: already at the latest version
	}
	if link == nil && ident.Deleted {
		// Deleted before it was ever projected: nothing to deactivate.
		return w.putLink(ctx, t, ident, &store.Link{IdentityID: ident.ID, Target: t.Name}, "", nil)
	}
	m := t.Mapping
	m.Lookup = mapping.StoreLookup(ctx, w.st) // resolves the manager's external id
	learner, lgroups, err := m.Learner(ident, groups)
	if err != nil {
		return &connector.Error{Op: "map", Err: err} // a config/data problem: permanent
	}
	hash := mapping.Hash(learner, lgroups)
	audit := func(action, detail string, err error) {
		w.audit(ctx, t, in, ident, action, detail, err)
	}

	next := &store.Link{IdentityID: ident.ID, Target: t.Name}
	if link != nil {
		*next = *link
	}
	next.ExternalID = learner.ExternalID

	fresh := false // learner just created or adopted: push groups unconditionally
	if next.LearnerID == "" {
		id, matchedBy, err := w.resolve(ctx, t, learner)
		if err != nil {
			audit("learner.resolve", "", err)
			return err
		}
		switch {
		case id != "":
			next.LearnerID, learner.ID, fresh = id, id, true
			audit("learner.adopt", "matched by "+matchedBy, nil)
			err := t.Conn.Update(ctx, learner)
			audit("learner.update", "adopted learner brought to desired state", err)
			if err != nil {
				return err
			}
		case !learner.Active:
			// Never create an account only to switch it off.
			return w.putLink(ctx, t, ident, next, hash, next.Applied)
		default:
			id, err := t.Conn.Create(ctx, learner)
			audit("learner.create", "", err)
			if err != nil {
				return err
			}
			next.LearnerID, learner.ID, fresh = id, id, true
			// Record the id at once (same synced version, no hash) so a
			// later failure here never leads to a second create.
			early := *next
			early.Hash = ""
			if err := w.st.PutLink(ctx, &early); err != nil && !errors.Is(err, store.ErrVersionConflict) {
				return fmt.Errorf("save link: %w", err)
			}
		}
	} else if link.Hash != hash {
		learner.ID = next.LearnerID
		err := t.Conn.Update(ctx, learner)
		if connector.IsNotFound(err) {
			// The learner was deleted by hand in the target: forget it and
			// let the retry resolve or re-create it.
			audit("learner.update", "learner gone from target; relinking", err)
			reset := *next
			reset.LearnerID, reset.Hash = "", ""
			if perr := w.st.PutLink(ctx, &reset); perr != nil && !errors.Is(perr, store.ErrVersionConflict) {
				return fmt.Errorf("reset link: %w", perr)
			}
			return &connector.Error{Op: "update", Retryable: true, Err: err}
		}
		audit(activeAction(learner), changedFields(ident), err)
		if err != nil {
			return err
		}
	}

	if gs, ok := t.Conn.(connector.GroupSetter); ok && (fresh || link.Hash != hash) {
		err := gs.SetGroups(ctx, next.LearnerID, lgroups)
		audit("learner.groups", fmt.Sprintf("%d groups", len(lgroups)), err)
		if err != nil {
			return err
		}
	}

	applied := next.Applied
	if learner.Active {
		applied, err = w.applyRules(ctx, t, next.LearnerID, ident, groups, applied, audit)
		if err != nil {
			return err
		}
	}
	return w.putLink(ctx, t, ident, next, hash, applied)
}

func (w *Worker) putLink(ctx context.Context, t *Target, ident *store.Identity, l *store.Link, hash string, applied []string) error {
	l.SyncedVersion = ident.Version
	l.Hash = hash
	l.Applied = applied
	l.Updated = w.cfg.Now().UTC()
	if err := w.st.PutLink(ctx, l); err != nil && !errors.Is(err, store.ErrVersionConflict) {
		return fmt.Errorf("save link: %w", err)
	}
	return nil
}

// resolve finds an existing learner for an unlinked identity. It returns
// the learner id ("" if none) and the key that matched.
func (w *Worker) resolve(ctx context.Context, t *Target, l connector.Learner) (string, string, error) {
	keys := []connector.Key{{Kind: connector.KeyExternalID, Value: l.ExternalID}}
	for _, k := range t.AdoptBy {
		if k == connector.KeyExternalID {
			continue
		}
		keys = append(keys, connector.Key{Kind: k, Value: keyValue(l, k)})
	}
	for _, k := range keys {
		if k.Value == "" {
			continue
		}
		found, err := t.Conn.Find(ctx, k)
		if err != nil {
			return "", "", err
		}
		switch {
		case len(found) == 1 && (k.Kind == connector.KeyExternalID || found[0].ExternalID == "" || found[0].ExternalID == l.ExternalID):
			return found[0].ID, string(k.Kind), nil
		case len(found) == 1:
			return "", "", &connector.Error{Op: "resolve", Conflict: true, Err: fmt.Errorf("learner %s matches by %s but carries another external id", found[0].ID, k.Kind)}
		case len(found) > 1:
			return "", "", &connector.Error{Op: "resolve", Conflict: true, Err: fmt.Errorf("%d learners match by %s", len(found), k.Kind)}
		}
	}
	return "", "", nil
}

func keyValue(l connector.Learner, k connector.KeyKind) string {
	switch k {
	case connector.KeyUserName:
		return l.UserName
	case connector.KeyEmail:
		return l.Email
	case connector.KeyEmployeeNumber:
		return l.Fields["employeeNumber"]
	}
	return ""
}

// applyRules carries out the enrollments the rules call for now and returns
// the applied list to record. A failed enrollment fails the sync; the retry
// plans it again (enrolling twice is harmless in the targets).
func (w *Worker) applyRules(ctx context.Context, t *Target, learnerID string, ident *store.Identity, groups []store.Member, applied []string, audit func(string, string, error)) ([]string, error) {
	res, err := mapping.Resource(ident)
	if err != nil {
		return applied, &connector.Error{Op: "rules", Err: err}
	}
	names := make([]string, 0, len(groups))
	for _, g := range groups {
		names = append(names, g.GroupName)
	}
	actions := t.Rules.Plan(res, names, applied)
	fired := slices.Clone(applied)
	if len(actions) > 0 {
		en, ok := t.Conn.(connector.Enroller)
		if !ok {
			audit("enroll", "target takes no enrollments; rules skipped", nil)
		}
		for _, a := range actions {
			if ok {
				err := en.Enroll(ctx, learnerID, a.Enrollment)
				audit("enroll", fmt.Sprintf("%s %s: %s", a.Enrollment.Kind, a.Enrollment.ID, a.Why), err)
				if err != nil {
					return applied, err
				}
			}
			fired = append(fired, a.Rule)
		}
	}
	return t.Rules.StillMatching(res, names, fired), nil
}

func activeAction(l connector.Learner) string {
	if !l.Active {
		return "learner.deactivate"
	}
	return "learner.update"
}

// changedFields names (never values) what the identity carries; the audit
// says which version caused the write, the store has the rest.
func changedFields(ident *store.Identity) string {
	if ident.Deleted {
		return "identity deleted in IdP"
	}
	return "identity version " + fmt.Sprint(ident.Version)
}

func (w *Worker) audit(ctx context.Context, t *Target, in queue.Intent, ident *store.Identity, action, detail string, err error) {
	result := "ok"
	if err != nil {
		result = "error: " + err.Error()
	}
	rec := &store.AuditRecord{
		IdentityID: ident.ID, Time: w.cfg.Now().UTC(), Target: t.Name, Actor: "worker",
		Action: action, Detail: detail, SourceVersion: ident.Version,
		Reason: in.Reason, RequestID: in.RequestID, Result: result,
	}
	if aerr := w.st.AppendAudit(ctx, rec); aerr != nil {
		w.cfg.Logger.WarnContext(ctx, "audit write failed", "identity", ident.ID, "err", aerr)
	}
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	w.cfg.Logger.Log(ctx, lvl, "sync action", "identity", ident.ID, "target", t.Name, "action", action,
		"version", ident.Version, "request_id", in.RequestID, "result", strings.SplitN(result, "\n", 2)[0])
}
