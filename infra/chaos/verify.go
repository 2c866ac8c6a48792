package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/learnerlink/learnerlink/shared/connector"
	"github.com/learnerlink/learnerlink/shared/connector/absorb/absorbsim"
	"github.com/learnerlink/learnerlink/shared/mapping"
	"github.com/learnerlink/learnerlink/shared/queue"
	"github.com/learnerlink/learnerlink/shared/queue/disk"
	"github.com/learnerlink/learnerlink/shared/review"
	"github.com/learnerlink/learnerlink/shared/store"
	"github.com/learnerlink/learnerlink/shared/store/bolt"
)

// targetName is the runner's target, the key of its links.
const targetName = "absorb"

// groupsField is where the Absorb connector writes group names
// (ABSORB_GROUPS_FIELD's default).
const groupsField = "string30"

// subject is one identity and what its learner should be.
type subject struct {
	ID      string
	Live    bool
	Version int64
	Learner connector.Learner
	Groups  []string
	MapErr  error
	Link    *store.Link // nil when not read (preview) or absent
	HasLink bool
	// Partial marks a deleted user known only by its external id (the
	// SCIM check): its learner, if any, must merely be inactive.
	Partial bool
	// Created orders the incarnations of one person (deleted and
	// provisioned again): the newest owns the learner.
	Created time.Time
}

// mismatch names (never values) the fields of one learner that differ
// from its identity's desired state.
type mismatch struct {
	IdentityID string
	Fields     []string
}

// outcome is what a check found.
type outcome struct {
	Identities  int // live
	Tombstones  int
	Learners    int
	Active      int // active learners
	Mismatches  []mismatch
	Missing     []string // identities that should have a learner and have none
	DupExternal []string // external ids held by more than one learner
	DupUserName []string
	Orphans     []string // learners whose external id no identity carries
	MapErrors   []string
	// Read from the store and queue (authoritative check only).
	Unsynced   int // links missing or behind the identity's version (not counting reviews)
	Pending    int
	Reviews    []string
	DLQ        []queue.Message
	QueueLeft  int
	storeFacts bool
}

// settled reports that nothing is left to do: no identity pending, the
// queue empty, every link at its identity's version.
func (o *outcome) settled() bool {
	return o.storeFacts && o.Pending == 0 && o.QueueLeft == 0 && o.Unsynced == 0
}

// converged reports that every learner is as its identity wants it.
func (o *outcome) converged() bool {
	return len(o.Mismatches) == 0 && len(o.Missing) == 0 && len(o.DupExternal) == 0 &&
		len(o.DupUserName) == 0 && len(o.Orphans) == 0 && len(o.MapErrors) == 0
}

// simView is the simulator's state the comparison needs.
type simView struct {
	users       []absorbsim.User
	deptByName  map[string]string // folded name → id
	defaultDept string
}

// compare checks every subject's learner in the simulator.
func compare(subjects []subject, sv simView, reviews map[string]bool) *outcome {
	out := &outcome{Learners: len(sv.users)}
	byExt := map[string][]absorbsim.User{}
	byName := map[string]int{}
	for _, u := range sv.users {
		byExt[strings.ToLower(u.ExternalID)] = append(byExt[strings.ToLower(u.ExternalID)], u)
		byName[strings.ToLower(u.Username)]++
		if u.ActiveStatus == 0 {
			out.Active++
		}
	}
	for _, ext := range slices.Sorted(maps.Keys(byExt)) {
		if len(byExt[ext]) > 1 {
			out.DupExternal = append(out.DupExternal, ext)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byName)) {
		if byName[n] > 1 {
			out.DupUserName = append(out.DupUserName, n)
		}
	}
	liveOwner := map[string]bool{}
	known := map[string]bool{}
	newestTomb := map[string]subject{} // per external id, the newest deleted incarnation
	for _, s := range subjects {
		ext := strings.ToLower(s.Learner.ExternalID)
		known[ext] = true
		if s.Live {
			out.Identities++
			if s.MapErr == nil {
				liveOwner[ext] = true
			}
		} else {
			out.Tombstones++
			if n, ok := newestTomb[ext]; !ok || s.Created.After(n.Created) || s.Created.Equal(n.Created) && s.ID > n.ID {
				newestTomb[ext] = s
			}
		}
	}
	for _, s := range subjects {
		if s.MapErr != nil {
			out.MapErrors = append(out.MapErrors, s.ID+": "+s.MapErr.Error())
			continue
		}
		ext := strings.ToLower(s.Learner.ExternalID)
		if !s.Live && liveOwner[ext] {
			continue // deleted and provisioned again: the live identity owns the learner
		}
		if !s.Live && !s.Partial && s.ID != newestTomb[ext].ID {
			continue // deleted more than once: the newest incarnation owns the learner
		}
		us := byExt[ext]
		if len(us) == 0 {
			if s.Live && s.Learner.Active && !reviews[s.ID] {
				out.Missing = append(out.Missing, s.ID)
			}
			continue
		}
		u := us[0]
		if s.Partial {
			if u.ActiveStatus == 0 {
				out.Mismatches = append(out.Mismatches, mismatch{IdentityID: s.ID, Fields: []string{"active"}})
			}
			continue
		}
		bad := diff(s.Learner, s.Groups, u, sv)
		if s.Live && s.Learner.Active && s.HasLink && (s.Link == nil || s.Link.LearnerID != u.ID) {
			bad = append(bad, "link")
		}
		if len(bad) > 0 {
			out.Mismatches = append(out.Mismatches, mismatch{IdentityID: s.ID, Fields: bad})
		}
	}
	for _, ext := range slices.Sorted(maps.Keys(byExt)) {
		if !known[ext] {
			out.Orphans = append(out.Orphans, ext)
		}
	}
	return out
}

// diff names the fields of learner u that differ from l (and its groups),
// following what the Absorb connector writes: core fields (never blanked),
// the active flag, the department by name, plain and custom fields, and
// the group names in the groups field.
func diff(l connector.Learner, groups []string, u absorbsim.User, sv simView) []string {
	var bad []string
	cmp := func(name, want, got string) {
		if want != got {
			bad = append(bad, name)
		}
	}
	cmp("externalId", l.ExternalID, u.ExternalID)
	cmp("userName", l.UserName, u.Username)
	for _, f := range []struct{ name, want, got string }{
		{"email", l.Email, u.EmailAddress}, {"firstName", l.FirstName, u.FirstName}, {"lastName", l.LastName, u.LastName},
	} {
		if f.want != "" {
			cmp(f.name, f.want, f.got)
		}
	}
	if l.Active != (u.ActiveStatus == 0) {
		bad = append(bad, "active")
	}
	var wire map[string]any
	b, _ := json.Marshal(u)
	_ = json.Unmarshal(b, &wire)
	for _, k := range slices.Sorted(maps.Keys(l.Fields)) {
		v := l.Fields[k]
		switch {
		case k == "departmentName":
			want := sv.deptByName[strings.ToLower(strings.TrimSpace(v))]
			if want == "" {
				want = sv.defaultDept
			}
			cmp("department", want, u.DepartmentID)
		case k == "supervisorExternalId":
			if v == "" {
				cmp(k, "", u.SupervisorID)
			}
		case strings.HasPrefix(k, "customFields."):
			cmp(k, v, text(u.CustomFields[strings.TrimPrefix(k, "customFields.")]))
		default:
			cmp(k, v, text(wire[k]))
		}
	}
	cmp("groups", groupsValue(groups), text(u.CustomFields[groupsField]))
	return bad
}

// groupsValue is the groups field the connector writes: sorted, unique
// names, each enclosed in "|".
func groupsValue(groups []string) string {
	var names []string
	for _, g := range groups {
		g = strings.TrimSpace(strings.ReplaceAll(g, "|", "/"))
		if g != "" && !slices.Contains(names, g) {
			names = append(names, g)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "|" + strings.Join(names, "|") + "|"
}

func text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func newSimView(sim *absorbsim.Sim, depts map[string]string) simView {
	return simView{users: sim.Users(), deptByName: depts, defaultDept: sim.DefaultDepartmentID()}
}

// storeCheck is the authoritative check, run while the runner is stopped:
// it reads the identities (tombstones included) from the runner's store,
// maps them as the worker does, and reads the pending index, the review
// list, the dead-letter queue and what is left in the queue.
func storeCheck(ctx context.Context, dataDir string, knownIDs []string, sv simView) (*outcome, error) {
	st, err := bolt.Open(filepath.Join(dataDir, "store.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ids := map[string]bool{}
	for _, id := range knownIDs {
		ids[id] = true
	}
	for cursor := ""; ; {
		page, err := st.ListIdentities(ctx, cursor, 1000)
		if err != nil {
			return nil, err
		}
		for _, id := range page.Items {
			ids[id.ID] = true
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	m := mapping.Default()
	m.Lookup = mapping.StoreLookup(ctx, st)
	var subjects []subject
	var behind []string
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		ident, err := st.GetIdentity(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue // a create that never happened
		}
		if err != nil {
			return nil, err
		}
		var groups []store.Member
		if !ident.Deleted {
			if groups, err = st.GroupsOf(ctx, id); err != nil {
				return nil, err
			}
		}
		l, g, merr := m.Learner(ident, groups)
		link, err := st.GetLink(ctx, id, targetName)
		if errors.Is(err, store.ErrNotFound) {
			link, err = nil, nil
		}
		if err != nil {
			return nil, err
		}
		if link == nil || link.SyncedVersion < ident.Version {
			behind = append(behind, id)
		}
		subjects = append(subjects, subject{ID: id, Live: !ident.Deleted, Version: ident.Version,
			Learner: l, Groups: g, MapErr: merr, Link: link, HasLink: true, Created: ident.Created})
	}
	pend, err := st.ListPending(ctx, time.Now().Add(24*time.Hour), 1<<30)
	if err != nil {
		return nil, err
	}
	reviews := map[string]bool{}
	var reviewIDs []string
	for cursor := ""; ; {
		page, err := st.ListDocs(ctx, review.Kind, cursor, 500)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Items {
			id := d.Key[strings.LastIndex(d.Key, "/")+1:]
			reviews[id] = true
			reviewIDs = append(reviewIDs, id)
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	out := compare(subjects, sv, reviews)
	out.storeFacts = true
	out.Pending, out.Reviews = len(pend), reviewIDs
	for _, id := range behind {
		if !reviews[id] { // left for a human: the worker settled it
			out.Unsynced++
		}
	}
	out.DLQ, out.QueueLeft, err = queueFacts(ctx, dataDir)
	return out, err
}

// queueFacts reads the dead letters and counts the messages left, from a
// copy of the queue file opened with a clock 13 hours ahead, so delayed
// and in-flight messages count too, and the runner's own file is never
// touched.
func queueFacts(ctx context.Context, dataDir string) ([]queue.Message, int, error) {
	cp := filepath.Join(dataDir, "queue-check.db")
	if err := copyFile(filepath.Join(dataDir, "queue.db"), cp); err != nil {
		return nil, 0, err
	}
	defer os.Remove(cp)
	q, err := disk.Open(cp, disk.Options{Now: func() time.Time { return time.Now().Add(13 * time.Hour) }})
	if err != nil {
		return nil, 0, err
	}
	defer q.Close()
	dead, err := q.DeadLetters(ctx, 1<<20)
	if err != nil {
		return nil, 0, err
	}
	left := 0
	for {
		msgs, err := q.Receive(ctx, 1000, 0)
		if err != nil {
			return nil, 0, err
		}
		if len(msgs) == 0 {
			break
		}
		left += len(msgs)
		for _, m := range msgs {
			if err := q.Ack(ctx, m.Handle); err != nil {
				return nil, 0, err
			}
		}
	}
	return dead, left, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// scimCheck is the cheap check while the runner runs: the live users as
// the SCIM API lists them (with their groups), mapped like the worker
// maps them, and the learners of deleted users (by external id) must be
// inactive. It says "looks done"; storeCheck decides.
func scimCheck(ctx context.Context, x *executor, sv simView, deletedExt []string) (*outcome, error) {
	m := mapping.Default()
	var subjects []subject
	for _, ext := range deletedExt {
		subjects = append(subjects, subject{ID: "deleted:" + ext, Learner: connector.Learner{ExternalID: ext}, Partial: true})
	}
	for start := 1; ; {
		st, raw, err := x.call(ctx, http.MethodGet, fmt.Sprintf("/Users?startIndex=%d&count=200", start), nil)
		if err != nil {
			return nil, err
		}
		if st != http.StatusOK {
			return nil, statusErr(st, raw)
		}
		var list struct {
			TotalResults int               `json:"totalResults"`
			Resources    []json.RawMessage `json:"Resources"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
		for _, r := range list.Resources {
			s, err := scimSubject(m, r)
			if err != nil {
				return nil, err
			}
			subjects = append(subjects, s)
		}
		start += len(list.Resources)
		if len(list.Resources) == 0 || start > list.TotalResults {
			break
		}
	}
	return compare(subjects, sv, nil), nil
}

// scimSubject turns a SCIM User as served into the identity the store
// holds (the resource without meta and groups) and its memberships.
func scimSubject(m mapping.Config, raw json.RawMessage) (subject, error) {
	var res map[string]any
	if err := json.Unmarshal(raw, &res); err != nil {
		return subject{}, err
	}
	var groups []store.Member
	if gs, ok := res["groups"].([]any); ok {
		for _, g := range gs {
			if gm, ok := g.(map[string]any); ok {
				name, _ := gm["display"].(string)
				groups = append(groups, store.Member{GroupName: name})
			}
		}
	}
	delete(res, "groups")
	delete(res, "meta")
	doc, err := json.Marshal(res)
	if err != nil {
		return subject{}, err
	}
	id, _ := res["id"].(string)
	userName, _ := res["userName"].(string)
	ext, _ := res["externalId"].(string)
	active, _ := res["active"].(bool)
	ident := &store.Identity{ID: id, UserName: userName, ExternalID: ext, Active: active, Resource: doc}
	l, g, merr := m.Learner(ident, groups)
	return subject{ID: id, Live: true, Learner: l, Groups: g, MapErr: merr}, nil
}
