package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// executor sends the generated changes to the SCIM API from several
// concurrent clients, the way an IdP's provisioning engine would: it
// retries what failed in transit or with 5xx/429 (the runner may be dead
// for a moment), resolves a create whose answer was lost by looking the
// userName up, and treats 404 on a stale retry as done.
//
// Ordering: one dispatcher hands the ops out in order. A user's creates
// and deletes wait for its earlier ops and hold back its later ones; its
// other ops (edits, moves, memberships, (de)activations) run concurrently
// and so may overtake each other.
type executor struct {
	base, token string
	hookSecret  string
	hc          *http.Client
	ops         []op
	users       []sync.RWMutex
	groups      []sync.RWMutex

	mu       sync.Mutex
	userIDs  map[member]string // (user, incarnation) → SCIM id
	groupIDs []string

	smu  sync.Mutex // guards st
	st   execStats
	done atomic.Int64
}

// execStats counts what the clients saw.
type execStats struct {
	requests        int // every HTTP attempt
	byStatus        map[int]int
	transportErrors int
	retries         int
	duplicates      int // second sends and delayed copies
	stale           int // 404 on an edit of a user deleted meanwhile
	rejected        int // 400 on a membership of a user deleted meanwhile
	createResolved  int // create retried after a lost answer, found by userName
	byKind          [numKinds]int
	unexpected      []string
}

func newExecutor(base, token, hookSecret string, ops []op, users, groups, clients int) *executor {
	return &executor{
		base: strings.TrimRight(base, "/"), token: token, hookSecret: hookSecret, ops: ops,
		hc: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: clients, MaxIdleConnsPerHost: clients, IdleConnTimeout: 30 * time.Second}},
		users: make([]sync.RWMutex, users), groups: make([]sync.RWMutex, groups),
		userIDs: map[member]string{}, groupIDs: make([]string, groups),
		st: execStats{byStatus: map[int]int{}},
	}
}

type job struct {
	o       op
	release func()
}

// run sends every op with clients goroutines and returns when all are
// answered (or ctx ends). The ops are handed out evenly over spread (0:
// as fast as the clients go), as an IdP's changes trickle in over time.
func (x *executor) run(ctx context.Context, clients int, spread time.Duration) error {
	ch := make(chan job)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for j := range ch {
				x.do(ctx, j.o)
				j.release()
				x.done.Add(1)
			}
		})
	}
	var err error
	start := time.Now()
	for i, o := range x.ops {
		if spread > 0 {
			sleep(ctx, time.Until(start.Add(spread*time.Duration(i)/time.Duration(len(x.ops)))))
		}
		release := x.acquire(o)
		select {
		case ch <- job{o, release}:
			continue
		case <-ctx.Done():
			release()
			err = ctx.Err()
		}
		break
	}
	close(ch)
	wg.Wait()
	x.hc.CloseIdleConnections()
	return err
}

// acquire takes the locks o needs, in a fixed order; only the dispatcher
// acquires, so they cannot deadlock.
func (x *executor) acquire(o op) func() {
	var unlock []func()
	if o.User >= 0 {
		l := &x.users[o.User]
		if o.Kind.existence() {
			l.Lock()
			unlock = append(unlock, l.Unlock)
		} else {
			l.RLock()
			unlock = append(unlock, l.RUnlock)
		}
	}
	if o.Group >= 0 {
		l := &x.groups[o.Group]
		if o.Kind == kGroupCreate {
			l.Lock()
			unlock = append(unlock, l.Unlock)
		} else {
			l.RLock()
			unlock = append(unlock, l.RUnlock)
		}
	}
	seen := map[int]bool{}
	for _, m := range o.Members {
		if seen[m.User] || m.User == o.User {
			continue
		}
		seen[m.User] = true
		l := &x.users[m.User]
		l.RLock()
		unlock = append(unlock, l.RUnlock)
	}
	return func() {
		for _, u := range slices.Backward(unlock) {
			u()
		}
	}
}

func (x *executor) userID(m member) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.userIDs[m]
}

func (x *executor) groupID(g int) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.groupIDs[g]
}

// do sends one op (twice when o.Twice).
func (x *executor) do(ctx context.Context, o op) {
	if o.Jitter {
		sleep(ctx, time.Duration(o.Seq%7)*2*time.Millisecond)
	}
	x.smu.Lock()
	x.st.byKind[o.Kind]++
	if o.Dup {
		x.st.duplicates++
	}
	x.smu.Unlock()
	sends := 1
	if o.Twice {
		sends = 2
	}
	for i := range sends {
		if i == 1 {
			x.smu.Lock()
			x.st.duplicates++
			x.smu.Unlock()
		}
		if err := x.send(ctx, o, i == 1); err != nil {
			if ctx.Err() == nil {
				x.unexpected(fmt.Sprintf("op %d %s: %v", o.Seq, o.Kind, err))
			}
			return
		}
	}
}

func (x *executor) unexpected(s string) {
	x.smu.Lock()
	defer x.smu.Unlock()
	if len(x.st.unexpected) < 50 {
		x.st.unexpected = append(x.st.unexpected, s)
	}
}

// send carries out one sending of o; second is true for an IdP's repeat.
func (x *executor) send(ctx context.Context, o op, second bool) error {
	uid := ""
	if o.User >= 0 {
		uid = x.userID(member{o.User, o.Inc})
	}
	gid := ""
	if o.Group >= 0 && o.Kind != kGroupCreate {
		gid = x.groupID(o.Group)
		if gid == "" {
			return fmt.Errorf("group %d was never created", o.Group)
		}
	}
	switch o.Kind {
	case kGroupCreate:
		st, raw, err := x.call(ctx, http.MethodPost, "/Groups", map[string]any{
			"schemas": []string{groupURN}, "displayName": o.NewName, "members": []any{}})
		if err != nil {
			return err
		}
		id := ""
		switch st {
		case http.StatusCreated:
			id = idOf(raw)
		case http.StatusConflict:
			if id, err = x.lookup(ctx, "/Groups", "displayName", o.NewName); err != nil {
				return err
			}
		default:
			return statusErr(st, raw)
		}
		x.mu.Lock()
		if x.groupIDs[o.Group] == "" {
			x.groupIDs[o.Group] = id
		}
		x.mu.Unlock()
		return nil

	case kCreate, kRecreate:
		st, raw, err := x.call(ctx, http.MethodPost, "/Users", userBody(o.Profile, o.Shape, ""))
		if err != nil {
			return err
		}
		switch {
		case st == http.StatusCreated:
			if second {
				return fmt.Errorf("a repeated create was accepted (201), want 409")
			}
			x.setUser(o, idOf(raw))
			return nil
		case st == http.StatusConflict && second:
			return nil // the IdP's repeat: 409 uniqueness, as Okta expects
		case st == http.StatusConflict:
			// The first attempt went through but its answer was lost
			// (the runner was killed): find the user, as Okta does.
			id, err := x.lookup(ctx, "/Users", "userName", o.Profile.UserName)
			if err != nil {
				return err
			}
			x.smu.Lock()
			x.st.createResolved++
			x.smu.Unlock()
			x.setUser(o, id)
			return nil
		}
		return statusErr(st, raw)

	case kHookDeactivate, kHookReactivate:
		st, raw, err := x.call(ctx, http.MethodPost, hookPath, hookBody(o, x.hookUUID(o)))
		if err != nil {
			return err
		}
		if st != http.StatusOK && st != http.StatusNoContent {
			return statusErr(st, raw)
		}
		return nil

	case kDelete:
		st, raw, err := x.call(ctx, http.MethodDelete, "/Users/"+uid, nil)
		if err != nil {
			return err
		}
		if st != http.StatusNoContent && st != http.StatusNotFound {
			return statusErr(st, raw)
		}
		return nil
	}

	if o.User >= 0 && uid == "" {
		return fmt.Errorf("user %d/%d has no id", o.User, o.Inc)
	}
	var method, path string
	var body any
	switch o.Kind {
	case kPut:
		method, path, body = http.MethodPut, "/Users/"+uid, userBody(o.Profile, okta, uid)
	case kMove:
		if o.Patch == nil {
			method, path, body = http.MethodPut, "/Users/"+uid, userBody(o.Profile, okta, uid)
		} else {
			method, path, body = http.MethodPatch, "/Users/"+uid, patchBody(o.Patch)
		}
	case kPatch, kDeactivate, kReactivate:
		method, path, body = http.MethodPatch, "/Users/"+uid, patchBody(o.Patch)
	case kGroupAdd, kGroupRemove:
		ops := x.memberOps(o)
		if len(ops) == 0 {
			return nil
		}
		method, path, body = http.MethodPatch, "/Groups/"+gid, patchBody(ops)
	case kRename:
		method, path, body = http.MethodPatch, "/Groups/"+gid, patchBody([]patchOp{{Op: "replace",
			Value: map[string]any{"id": gid, "displayName": o.NewName}}})
	default:
		return fmt.Errorf("unknown op kind %d", o.Kind)
	}
	st, raw, err := x.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	switch {
	case st == http.StatusOK || st == http.StatusNoContent:
		return nil
	case st == http.StatusNotFound && o.User >= 0:
		x.smu.Lock()
		x.st.stale++
		x.smu.Unlock()
		return nil
	case st == http.StatusBadRequest && (o.Kind == kGroupAdd) && o.Dup:
		x.smu.Lock()
		x.st.rejected++
		x.smu.Unlock()
		return nil
	}
	return statusErr(st, raw)
}

// memberOps is a membership change in the shape of the op's IdP: Okta
// adds a value array and removes one filter path per member; Entra adds
// and removes value arrays.
func (x *executor) memberOps(o op) []patchOp {
	var vals []any
	var ids []string
	for _, m := range o.Members {
		id := x.userID(m)
		if id == "" {
			continue
		}
		ids = append(ids, id)
		v := map[string]any{"value": id}
		if o.Shape == okta {
			v["display"] = fmt.Sprintf("user %d", m.User)
		}
		vals = append(vals, v)
	}
	if len(vals) == 0 {
		return nil
	}
	switch {
	case o.Kind == kGroupAdd && o.Shape == okta:
		return []patchOp{{Op: "add", Path: "members", Value: vals}}
	case o.Kind == kGroupAdd:
		return []patchOp{{Op: "Add", Path: "members", Value: vals}}
	case o.Shape == okta:
		var ops []patchOp
		for _, id := range ids {
			ops = append(ops, patchOp{Op: "remove", Path: `members[value eq "` + id + `"]`})
		}
		return ops
	}
	return []patchOp{{Op: "Remove", Path: "members", Value: vals}}
}

func (x *executor) setUser(o op, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.userIDs[member{o.User, o.Inc}] = id
}

// lookup finds a resource's id by an attribute, as Okta's import does.
func (x *executor) lookup(ctx context.Context, endpoint, attr, value string) (string, error) {
	q := url.QueryEscape(fmt.Sprintf("%s eq %q", attr, value))
	st, raw, err := x.call(ctx, http.MethodGet, endpoint+"?filter="+q, nil)
	if err != nil {
		return "", err
	}
	if st != http.StatusOK {
		return "", statusErr(st, raw)
	}
	var list struct {
		Resources []struct {
			ID string `json:"id"`
		}
	}
	if err := json.Unmarshal(raw, &list); err != nil || len(list.Resources) != 1 {
		return "", fmt.Errorf("look up %s %s: %d matches (%v)", endpoint, attr, len(list.Resources), err)
	}
	return list.Resources[0].ID, nil
}

// transient reports answers an IdP retries: the runner is down or busy, or
// a concurrent write to the same resource won (409 on an update).
func transient(method string, status int) bool {
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return true
	case status == http.StatusConflict && (method == http.MethodPut || method == http.MethodPatch):
		return true
	}
	return false
}

// call sends one request, retrying transport failures and transient
// answers with a capped backoff until ctx ends.
func (x *executor) call(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return 0, nil, err
		}
	}
	wait := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		st, raw, err := x.once(ctx, method, path, payload)
		x.smu.Lock()
		x.st.requests++
		if err != nil {
			x.st.transportErrors++
		} else {
			x.st.byStatus[st]++
		}
		retry := err != nil || transient(method, st)
		if retry {
			x.st.retries++
		}
		x.smu.Unlock()
		if !retry {
			return st, raw, nil
		}
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		sleep(ctx, wait)
		wait = min(2*wait, time.Second)
	}
}

// hookPath is the runner's Okta Event Hooks endpoint; call sends it there
// with the hook secret instead of to the SCIM API.
const hookPath = "/okta/hooks"

func (x *executor) once(ctx context.Context, method, path string, payload []byte) (int, []byte, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	u, auth, ctype := x.base+"/scim/v2"+path, "Bearer "+x.token, "application/scim+json; charset=utf-8"
	if path == hookPath {
		u, auth, ctype = x.base+path, x.hookSecret, "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Accept", "application/scim+json")
	if payload != nil {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := x.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return 0, nil, err
	}
	return res.StatusCode, raw, nil
}

// hookUUID is the event's uuid: the same for a redelivery (an immediate
// or delayed duplicate of the op), as Okta's are.
func (x *executor) hookUUID(o op) string {
	return fmt.Sprintf("%s-%d", o.Profile.ExternalID, o.Origin)
}

// hookBody is an Okta Event Hook delivery of one lifecycle event.
func hookBody(o op, uuid string) map[string]any {
	et := "user.lifecycle.deactivate"
	if o.Kind == kHookReactivate {
		et = "user.lifecycle.reactivate"
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return map[string]any{
		"eventType": "com.okta.event_hook", "eventTypeVersion": "1.0", "cloudEventsVersion": "0.1",
		"eventId": uuid, "eventTime": now, "contentType": "application/json",
		"data": map[string]any{"events": []any{map[string]any{
			"uuid": uuid, "published": now, "eventType": et, "displayMessage": et, "severity": "INFO",
			"outcome": map[string]any{"result": "SUCCESS"},
			"actor":   map[string]any{"id": "00uadmin", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin"},
			"target": []any{map[string]any{"id": o.Profile.ExternalID, "type": "User", "alternateId": o.Profile.UserName,
				"displayName": o.Profile.Given + " " + o.Profile.Family}},
		}}},
	}
}

func idOf(raw []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.ID
}

func statusErr(st int, raw []byte) error {
	return fmt.Errorf("status %d: %.200s", st, raw)
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
