package main

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// kind is what one Okta- or Entra-shaped change does.
type kind int

const (
	kGroupCreate    kind = iota // Push Groups: POST /Groups (empty)
	kCreate                     // POST /Users
	kPut                        // Okta: full PUT /Users/{id} with edited values
	kPatch                      // profile edit by PATCH (Okta path-less, Entra paths)
	kMove                       // department move (PUT or Entra PATCH on the enterprise path)
	kGroupAdd                   // Push Groups PATCH add members (Okta) / Add value array (Entra)
	kGroupRemove                // PATCH remove members[value eq] (Okta) / Remove value array (Entra)
	kDeactivate                 // PATCH active false (Okta object / Entra "False")
	kReactivate                 // PATCH active true
	kDelete                     // Entra DELETE /Users/{id}
	kRecreate                   // POST /Users again for a deleted person, same userName and externalId
	kRename                     // Push Groups path-less replace {id, displayName}
	kHookDeactivate             // Okta Event Hook user.lifecycle.deactivate (at-least-once)
	kHookReactivate             // Okta Event Hook user.lifecycle.reactivate
	numKinds
)

func (k kind) String() string {
	names := [numKinds]string{"group-create", "create", "put", "patch", "move", "group-add", "group-remove",
		"deactivate", "reactivate", "delete", "recreate", "rename", "hook-deactivate", "hook-reactivate"}
	if k < 0 || k >= numKinds {
		return fmt.Sprintf("kind(%d)", int(k))
	}
	return names[k]
}

// existence reports whether the op creates or deletes a user: such ops are
// never reordered with the user's other ops (the generator's model of who
// exists must hold at run time; Okta and Entra do the same).
func (k kind) existence() bool { return k == kCreate || k == kDelete || k == kRecreate }

// shape is the IdP whose request shapes a user's changes use.
type shape int

const (
	okta shape = iota
	entra
)

// profile is what the generator last set for a user; PUT and create
// bodies are built from a copy taken when the op was generated.
type profile struct {
	UserName, ExternalID string
	Given, Family        string
	Email                string
	Title, Dept          string
	CostCenter, City     string
	EmployeeNumber       string
	Active               bool
}

// patchOp is one SCIM PATCH operation with a path (Entra) or a path-less
// value object (Okta).
type patchOp struct {
	Op    string
	Path  string
	Value any
}

// op is one generated change. User and member ops carry the incarnation
// of the user they target: a delayed duplicate aimed at a user that was
// deleted (and maybe created again) meanwhile reaches the old id, as a
// late retry from the IdP would.
type op struct {
	Seq     int
	Kind    kind
	User    int // -1: none
	Inc     int
	Group   int // -1: none
	Members []member
	Shape   shape
	Profile profile   // create, recreate, put, move (Okta)
	Patch   []patchOp // patch, move (Entra), deactivate, reactivate
	NewName string    // rename
	// Twice sends the request a second time right after the first (an
	// IdP retry whose first answer was lost); Dup marks a delayed copy of
	// an earlier op.
	Twice bool
	Dup   bool
	// Jitter delays the send a little, to reorder it against its
	// neighbours on other clients.
	Jitter bool
	// Origin numbers the change; a delayed duplicate keeps its original's
	// (an event hook redelivery carries the same uuid).
	Origin int
}

type member struct{ User, Inc int }

// genConfig is what the workload depends on; the same config and seed give
// the same ops.
type genConfig struct {
	N         int // changes, duplicates not counted
	Users     int
	Groups    int
	Seed      uint64
	PDup      float64
	PReorder  float64
	Renames   bool
	Recreates bool
	Prefix    string // makes userNames unique per run
}

// departments are seeded in the simulator; "" (no department) is also drawn.
func departments() []string {
	return []string{"Engineering", "Sales", "Marketing", "Support", "Finance", "People Ops"}
}

func groupNames() []string {
	return []string{"LMS Learners", "Sales Onboarding", "Compliance 2026", "Engineering", "Managers", "New Hires",
		"Security Awareness", "Support Tier 1", "Finance", "EMEA", "APAC", "Contractors", "Leadership", "Mentors", "Interns", "Field Sales"}
}

// vocab is what profile values are drawn from.
type vocab struct {
	given, family, titles, cities, depts []string
}

func newVocab() vocab {
	return vocab{
		given:  []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie", "Margaret", "Dennis"},
		family: []string{"Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lamport", "Hamilton", "Ritchie"},
		titles: []string{"Engineer", "Senior Engineer", "Account Executive", "Support Agent", "Analyst", "Manager", "Director", ""},
		cities: []string{"Berlin", "Toronto", "Austin", "Lisbon", "Osaka", "Nairobi", ""},
		depts:  departments(),
	}
}

func pickOf(r *rand.Rand, xs []string) string { return xs[r.IntN(len(xs))] }

// maxGroupsPerUser keeps the groups field (|A|B|…|) within Absorb's 255
// characters of a text custom field.
const maxGroupsPerUser = 6

type userState struct {
	exists  bool
	created bool
	inc     int
	prof    profile
	shape   shape
	groups  map[int]bool
	version int // edits so far, to vary values
}

type groupState struct {
	name    string
	members map[int]bool // user indexes (current incarnation)
	renames int
}

// generate builds the changes for cfg: groups first, then user creates
// interleaved with edits of the users that exist, each valid against the
// generator's own model of the directory at that point.
func generate(cfg genConfig) []op {
	r := rand.New(rand.NewPCG(cfg.Seed, 0xc4a05))
	v, gnames := newVocab(), groupNames()
	users := make([]*userState, cfg.Users)
	for i := range users {
		users[i] = &userState{groups: map[int]bool{}}
	}
	groups := make([]*groupState, cfg.Groups)
	var ops []op
	for g := range groups {
		name := gnames[g%len(gnames)]
		if g >= len(gnames) {
			name = fmt.Sprintf("%s %d", name, g/len(gnames)+1)
		}
		groups[g] = &groupState{name: name, members: map[int]bool{}}
		ops = append(ops, op{Kind: kGroupCreate, User: -1, Group: g, NewName: name})
	}
	var live, deleted []int // user indexes
	created := 0
	pick := func(xs []int) int { return xs[r.IntN(len(xs))] }
	remove := func(xs []int, v int) []int {
		i := slices.Index(xs, v)
		return slices.Delete(xs, i, i+1)
	}
	// Creates spread over the first ~40% of the changes.
	pCreate := min(1, float64(cfg.Users)/(0.4*float64(max(cfg.N-cfg.Groups, 1))))
	// Reactivations outweigh deactivations, so most people stay active
	// (the inactive pool stays small) and the LMS has learners to check.
	weights := [numKinds]int{kPut: 18, kPatch: 16, kMove: 12, kGroupAdd: 14, kGroupRemove: 8,
		kDeactivate: 6, kReactivate: 7, kDelete: 3, kHookDeactivate: 2, kHookReactivate: 3}
	if cfg.Recreates {
		weights[kRecreate] = 3
	}
	if cfg.Renames {
		weights[kRename] = 2
	}
	total := 0
	for _, w := range weights {
		total += w
	}
	newProfile := func(u int, inc int) profile {
		p := profile{
			UserName:       fmt.Sprintf("%s.u%05d@example.com", cfg.Prefix, u),
			ExternalID:     externalID(cfg.Prefix, u),
			Given:          pickOf(r, v.given),
			Family:         pickOf(r, v.family),
			Title:          pickOf(r, v.titles),
			Dept:           pickOf(r, v.depts),
			CostCenter:     fmt.Sprintf("CC-%d", r.IntN(20)),
			City:           pickOf(r, v.cities),
			EmployeeNumber: fmt.Sprintf("E%05d", u),
			Active:         r.Float64() < 0.95, // a few are created inactive
		}
		if r.IntN(10) == 0 {
			p.Dept = "" // no department: Absorb's default
		}
		p.Email = strings.ToLower(p.Given) + "." + p.UserName
		_ = inc
		return p
	}
	for len(ops)-cfg.Groups < cfg.N {
		o := op{User: -1, Group: -1}
		if created < cfg.Users && (len(live) == 0 || r.Float64() < pCreate) {
			u := created
			created++
			st := users[u]
			st.exists, st.created = true, true
			if r.IntN(10) < 3 {
				st.shape = entra
			}
			st.prof = newProfile(u, 0)
			live = append(live, u)
			o = op{Kind: kCreate, User: u, Inc: 0, Group: -1, Shape: st.shape, Profile: st.prof}
		} else {
			k := kind(-1)
			// At most a tenth of the people are deleted (and not back).
			canDelete := len(deleted) < max(cfg.Users/10, 1)
			for tries := 0; tries < 50 && k < 0; tries++ {
				x := r.IntN(total)
				for kk, w := range weights {
					if x < w {
						k = kind(kk)
						break
					}
					x -= w
				}
				if !feasible(k, users, groups, live, deleted) || k == kDelete && !canDelete {
					k = -1
				}
			}
			if k < 0 {
				k = kPut // always possible: some user is live
			}
			o.Kind = k
			switch k {
			case kRename:
				g := r.IntN(len(groups))
				gs := groups[g]
				gs.renames++
				gs.name = fmt.Sprintf("%s (r%d)", gnames[g%len(gnames)], gs.renames)
				o.Group, o.NewName = g, gs.name
			case kRecreate:
				u := pick(deleted)
				st := users[u]
				st.exists = true
				st.inc++
				prof := newProfile(u, st.inc)
				prof.Active = true
				st.prof = prof
				deleted = remove(deleted, u)
				live = append(live, u)
				o.User, o.Inc, o.Shape, o.Profile = u, st.inc, st.shape, prof
			case kGroupAdd, kGroupRemove:
				g := pickGroup(r, k, users, groups, live)
				gs := groups[g]
				o.Group = g
				n := 1 + r.IntN(3)
				var cands []int
				if k == kGroupAdd {
					for _, u := range live {
						if !gs.members[u] && len(users[u].groups) < maxGroupsPerUser {
							cands = append(cands, u)
						}
					}
				} else {
					for u := range gs.members {
						cands = append(cands, u)
					}
					slices.Sort(cands)
				}
				r.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
				cands = cands[:min(n, len(cands))]
				slices.Sort(cands)
				// Okta removes one member per filter op; both IdPs mix.
				o.Shape = okta
				if r.IntN(10) < 3 {
					o.Shape = entra
				}
				for _, u := range cands {
					o.Members = append(o.Members, member{User: u, Inc: users[u].inc})
					if k == kGroupAdd {
						gs.members[u], users[u].groups[g] = true, true
					} else {
						delete(gs.members, u)
						delete(users[u].groups, g)
					}
				}
			default:
				u := pickUser(r, k, users, live)
				st := users[u]
				st.version++
				o.User, o.Inc, o.Shape = u, st.inc, st.shape
				switch k {
				case kPut:
					editProfile(r, v, &st.prof)
					o.Shape = okta // Okta's custom-app updates are PUTs
					o.Profile = st.prof
				case kPatch:
					o.Patch = patchEdit(r, v, st)
				case kMove:
					d := pickOf(r, v.depts)
					if d == st.prof.Dept {
						d = v.depts[(slices.Index(v.depts, d)+1)%len(v.depts)]
					}
					st.prof.Dept = d
					if st.shape == entra {
						o.Patch = []patchOp{{Op: "Replace", Path: enterpriseURN + ":department", Value: d}}
					} else {
						o.Profile = st.prof
					}
				case kDeactivate, kReactivate:
					on := k == kReactivate
					st.prof.Active = on
					if st.shape == entra {
						v := "False"
						if on {
							v = "True"
						}
						o.Patch = []patchOp{{Op: "Replace", Path: "active", Value: v}}
					} else {
						o.Patch = []patchOp{{Op: "replace", Value: map[string]any{"active": on}}}
					}
				case kHookDeactivate, kHookReactivate:
					st.prof.Active = k == kHookReactivate
					o.Shape = okta
					o.Profile = st.prof // the event names the user by Okta id and login
				case kDelete:
					st.exists = false
					for g := range st.groups {
						delete(groups[g].members, u)
					}
					st.groups = map[int]bool{}
					live = remove(live, u)
					deleted = append(deleted, u)
					o.Shape = entra
				}
			}
		}
		o.Twice = r.Float64() < cfg.PDup/2
		if o.Kind == kHookDeactivate || o.Kind == kHookReactivate {
			// At-least-once: Okta redelivers a good share of its events.
			o.Twice = r.Float64() < 0.3
		}
		o.Jitter = r.Float64() < cfg.PReorder
		ops = append(ops, o)
	}
	// Delayed duplicates (the other half of PDup): a copy of an earlier
	// change sent again later, as an IdP retry that overtook newer
	// changes would be. Existence changes are only ever retried at once.
	out := make([]op, 0, len(ops)+len(ops)/10)
	later := map[int][]op{}
	for i := range ops {
		ops[i].Origin = i
	}
	for i, o := range ops {
		out = append(out, o)
		out = append(out, later[i]...)
		delete(later, i)
		if o.Kind == kGroupCreate || o.Kind.existence() || r.Float64() >= cfg.PDup/2 {
			continue
		}
		d := o
		d.Dup, d.Twice = true, false
		at := i + 1 + r.IntN(40)
		later[at] = append(later[at], d)
	}
	for _, k := range slices.Sorted(maps.Keys(later)) {
		out = append(out, later[k]...)
	}
	for i := range out {
		out[i].Seq = i
	}
	return out
}

// externalID is user u's IdP id (Okta user id shaped); it survives a
// delete and re-provisioning.
func externalID(prefix string, u int) string {
	return fmt.Sprintf("00u%s%05d", strings.ReplaceAll(prefix, "-", ""), u)
}

func feasible(k kind, users []*userState, groups []*groupState, live, deleted []int) bool {
	switch k {
	case kRecreate:
		return len(deleted) > 0
	case kDelete:
		return len(live) > 1
	case kGroupAdd:
		return len(groups) > 0 && len(live) > 0
	case kGroupRemove:
		for _, g := range groups {
			if len(g.members) > 0 {
				return true
			}
		}
		return false
	case kDeactivate, kReactivate, kHookDeactivate, kHookReactivate:
		want := k == kReactivate || k == kHookReactivate
		for _, u := range live {
			if users[u].prof.Active != want {
				return true
			}
		}
		return false
	case kRename:
		return len(groups) > 0
	}
	return len(live) > 0
}

func pickUser(r *rand.Rand, k kind, users []*userState, live []int) int {
	if k != kDeactivate && k != kReactivate && k != kHookDeactivate && k != kHookReactivate {
		return live[r.IntN(len(live))]
	}
	want := k == kReactivate || k == kHookReactivate
	for {
		u := live[r.IntN(len(live))]
		if users[u].prof.Active != want {
			return u
		}
	}
}

func pickGroup(r *rand.Rand, k kind, users []*userState, groups []*groupState, live []int) int {
	for {
		g := r.IntN(len(groups))
		if k == kGroupRemove && len(groups[g].members) == 0 {
			continue
		}
		return g
	}
}

// editProfile changes a few values, as an admin's edit in Okta would.
func editProfile(r *rand.Rand, v vocab, p *profile) {
	switch r.IntN(4) {
	case 0:
		p.Given = pickOf(r, v.given)
	case 1:
		p.Family = pickOf(r, v.family)
	case 2:
		p.Title = pickOf(r, v.titles)
	case 3:
		p.City = pickOf(r, v.cities)
	}
	if r.IntN(3) == 0 {
		p.CostCenter = fmt.Sprintf("CC-%d", r.IntN(20))
	}
}

// patchEdit is a profile edit sent as PATCH: Entra's capitalised ops on
// paths (value filters, enterprise paths), or Okta's path-less replace.
func patchEdit(r *rand.Rand, v vocab, st *userState) []patchOp {
	p := &st.prof
	if st.shape == entra {
		var ops []patchOp
		p.Given = pickOf(r, v.given)
		ops = append(ops, patchOp{Op: "Replace", Path: "name.givenName", Value: p.Given})
		if r.IntN(2) == 0 {
			p.Title = pickOf(r, v.titles)
			ops = append(ops, patchOp{Op: "Replace", Path: "title", Value: p.Title})
		}
		if r.IntN(2) == 0 {
			p.City = pickOf(r, v.cities)
			ops = append(ops, patchOp{Op: "Add", Path: `addresses[type eq "work"].locality`, Value: p.City})
		}
		if r.IntN(3) == 0 {
			p.CostCenter = fmt.Sprintf("CC-%d", r.IntN(20))
			ops = append(ops, patchOp{Op: "Replace", Path: enterpriseURN + ":costCenter", Value: p.CostCenter})
		}
		if r.IntN(4) == 0 {
			p.Email = fmt.Sprintf("v%d.%s", st.version, p.UserName)
			ops = append(ops, patchOp{Op: "Replace", Path: `emails[type eq "work"].value`, Value: p.Email})
		}
		return ops
	}
	p.Family = pickOf(r, v.family)
	p.Title = pickOf(r, v.titles)
	return []patchOp{{Op: "replace", Value: map[string]any{
		"name":  map[string]any{"givenName": p.Given, "familyName": p.Family},
		"title": p.Title,
	}}}
}

const (
	userURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	patchURN      = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

// userBody is the User resource Okta (or Entra) sends on create and Okta
// on PUT; id is "" on create.
func userBody(p profile, sh shape, id string) map[string]any {
	b := map[string]any{
		"schemas":     []string{userURN, enterpriseURN},
		"userName":    p.UserName,
		"externalId":  p.ExternalID,
		"name":        map[string]any{"givenName": p.Given, "familyName": p.Family},
		"displayName": p.Given + " " + p.Family,
		"emails":      []any{map[string]any{"primary": true, "value": p.Email, "type": "work"}},
		"active":      p.Active,
		enterpriseURN: map[string]any{"department": p.Dept, "employeeNumber": p.EmployeeNumber, "costCenter": p.CostCenter},
	}
	if p.Title != "" {
		b["title"] = p.Title
	}
	if p.City != "" {
		b["addresses"] = []any{map[string]any{"type": "work", "locality": p.City, "primary": true}}
	}
	if p.Dept == "" {
		delete(b[enterpriseURN].(map[string]any), "department")
	}
	switch sh {
	case okta:
		b["locale"] = "en-US"
		b["groups"] = []any{}
		if id == "" {
			b["password"] = "Chaos-" + p.ExternalID + "-pw1"
		}
	case entra:
		b["meta"] = map[string]any{"resourceType": "User"}
		b["roles"] = []any{}
		b["active"] = p.Active
	}
	if id != "" {
		b["id"] = id
	}
	return b
}

func patchBody(ops []patchOp) map[string]any {
	list := make([]any, len(ops))
	for i, o := range ops {
		m := map[string]any{"op": o.Op, "value": o.Value}
		if o.Path != "" {
			m["path"] = o.Path
		}
		if o.Value == nil {
			delete(m, "value")
		}
		list[i] = m
	}
	return map[string]any{"schemas": []string{patchURN}, "Operations": list}
}
