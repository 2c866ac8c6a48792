// Package sandbox is a built-in LMS that lives inside the local runner, so
// the first `go run ./infra/local` shows provisioning happen with no
// credentials. It keeps learners, groups and enrollments in a JSON file and
// implements every connector capability. It is not meant for production.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/learnerlink/learnerlink/shared/connector"
)

// Learner is what the sandbox holds for one account.
type Learner struct {
	connector.Learner
	Groups      []string               `json:"groups,omitempty"`
	Enrollments []connector.Enrollment `json:"enrollments,omitempty"`
}

// LMS is the sandbox. Safe for concurrent use.
type LMS struct {
	db *bbolt.DB // nil keeps everything in memory

	mu       sync.Mutex
	learners map[string]*Learner
	writes   int
}

var bucket = []byte("learners")

// Open loads (or starts) the sandbox kept at path; "" for memory only.
func Open(path string) (*LMS, error) {
	s := &LMS{learners: map[string]*Learner{}}
	if path == "" {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var l Learner
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("learner %s: %w", k, err)
			}
			s.learners[string(k)] = &l
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sandbox: %s: %w", path, err)
	}
	s.db = db
	return s, nil
}

// Close closes the file.
func (s *LMS) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// save persists one learner (or its removal); called with mu held.
func (s *LMS) save(id string) error {
	s.writes++
	if s.db == nil {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucket)
		l, ok := s.learners[id]
		if !ok {
			return b.Delete([]byte(id))
		}
		v, err := json.Marshal(l)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), v)
	})
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

func notFound(op, id string) error {
	return &connector.Error{Op: op, Status: 404, NotFound: true, Err: fmt.Errorf("learner %s not found", id)}
}

// Get implements connector.Connector.
func (s *LMS) Get(_ context.Context, id string) (*connector.Learner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.learners[id]
	if !ok {
		return nil, notFound("get", id)
	}
	c := cloneLearner(l.Learner)
	return &c, nil
}

// Find implements connector.Connector; keys compare case-insensitively
// except the external id.
func (s *LMS) Find(_ context.Context, key connector.Key) ([]connector.Learner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []connector.Learner
	for _, l := range s.learners {
		var v string
		switch key.Kind {
		case connector.KeyExternalID:
			if l.ExternalID == key.Value {
				out = append(out, cloneLearner(l.Learner))
			}
			continue
		case connector.KeyUserName:
			v = l.UserName
		case connector.KeyEmail:
			v = l.Email
		case connector.KeyEmployeeNumber:
			v = l.Fields["employeeNumber"]
		default:
			return nil, &connector.Error{Op: "find", Err: fmt.Errorf("unknown key %q", key.Kind)}
		}
		if v != "" && strings.EqualFold(v, key.Value) {
			out = append(out, cloneLearner(l.Learner))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Create implements connector.Connector. Usernames are unique, as in most LMSs.
func (s *LMS) Create(_ context.Context, l connector.Learner) (string, error) {
	if l.UserName == "" || l.FirstName == "" || l.LastName == "" {
		return "", &connector.Error{Op: "create", Status: 422, Err: errors.New("userName, firstName and lastName are required")}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.learners {
		if strings.EqualFold(o.UserName, l.UserName) {
			return "", &connector.Error{Op: "create", Status: 409, Conflict: true, Err: errors.New("username already taken")}
		}
	}
	l.ID = rand.Text()
	l.Fields = cloneFields(l.Fields)
	s.learners[l.ID] = &Learner{Learner: l}
	return l.ID, s.save(l.ID)
}

// Update implements connector.Connector. Like a real LMS it refuses a
// username another learner holds, and an update that changes nothing is
// not a write (so Writes measures what a sync really changed).
func (s *LMS) Update(_ context.Context, l connector.Learner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.learners[l.ID]
	if !ok {
		return notFound("update", l.ID)
	}
	for id, o := range s.learners {
		if id != l.ID && strings.EqualFold(o.UserName, l.UserName) {
			return &connector.Error{Op: "update", Status: 409, Conflict: true, Err: errors.New("username already taken")}
		}
	}
	fields := cloneFields(cur.Fields)
	maps.Copy(fields, l.Fields)
	l.Fields = fields
	if reflect.DeepEqual(cur.Learner, l) {
		return nil
	}
	cur.Learner = l
	return s.save(l.ID)
}

// SetGroups implements connector.GroupSetter.
func (s *LMS) SetGroups(_ context.Context, id string, groups []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.learners[id]
	if !ok {
		return notFound("groups", id)
	}
	sorted := slices.Compact(slices.Sorted(slices.Values(groups)))
	if slices.Equal(sorted, cur.Groups) {
		return nil
	}
	cur.Groups = sorted
	return s.save(id)
}

// Enroll implements connector.Enroller; enrolling twice is a no-op.
func (s *LMS) Enroll(_ context.Context, id string, e connector.Enrollment) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.learners[id]
	if !ok {
		return notFound("enroll", id)
	}
	if slices.Contains(cur.Enrollments, e) {
		return nil
	}
	cur.Enrollments = append(cur.Enrollments, e)
	return s.save(id)
}

// Delete removes a learner, as an admin deleting an account by hand in
// the LMS would (learnerlink itself never deletes): for tests of how the
// worker heals a learner gone from the target.
func (s *LMS) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.learners[id]; !ok {
		return notFound("delete", id)
	}
	delete(s.learners, id)
	return s.save(id)
}

// List implements connector.Lister; the cursor is the last id returned.
func (s *LMS) List(_ context.Context, cursor string) ([]connector.Learner, string, error) {
	const page = 500
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.learners))
	for id := range s.learners {
		if id > cursor {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	next := ""
	if len(ids) > page {
		ids = ids[:page]
		next = ids[page-1]
	}
	out := make([]connector.Learner, 0, len(ids))
	for _, id := range ids {
		out = append(out, cloneLearner(s.learners[id].Learner))
	}
	return out, next, nil
}

// Snapshot returns every learner with its groups and enrollments, sorted by
// username: for the local runner's /sandbox view and for tests.
func (s *LMS) Snapshot() []Learner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Learner, 0, len(s.learners))
	for _, l := range s.learners {
		c := Learner{Learner: cloneLearner(l.Learner), Groups: slices.Clone(l.Groups), Enrollments: slices.Clone(l.Enrollments)}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserName < out[j].UserName })
	return out
}

// Writes counts state-changing calls, to measure coalescing.
func (s *LMS) Writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func cloneLearner(l connector.Learner) connector.Learner {
	l.Fields = cloneFields(l.Fields)
	return l
}

func cloneFields(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}
