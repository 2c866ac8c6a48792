package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/learnerlink/learnerlink/shared/scim/filter"
	"github.com/learnerlink/learnerlink/shared/store"
)

// listQuery is a parsed list or .search request.
type listQuery struct {
	filter     *filter.Filter
	rawFilter  string
	startIndex int // 1-based
	count      int
	proj       projection
}

type listResponse struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []any    `json:"Resources"`
}

func newListResponse(total, start int, items []any) listResponse {
	if items == nil {
		items = []any{}
	}
	return listResponse{
		Schemas:      []string{urnListResponse},
		TotalResults: total,
		StartIndex:   start,
		ItemsPerPage: len(items),
		Resources:    items,
	}
}

// parseListQuery reads filter, startIndex, count and the projection from
// the query string (RFC 7644 §3.4.2).
func (h *handler) parseListQuery(rt *resourceType, q url.Values) (listQuery, error) {
	lq := listQuery{startIndex: 1, count: h.cfg.MaxResults, proj: parseProjection(rt, q)}
	if s := q.Get("startIndex"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return lq, badRequest(errInvalidValue, "startIndex must be an integer")
		}
		lq.startIndex = n
	}
	if s := q.Get("count"); s != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return lq, badRequest(errInvalidValue, "count must be an integer")
		}
		lq.count = n
	}
	return lq, h.finishListQuery(&lq, q.Get("filter"), q.Has("filter"))
}

// parseSearchBody reads a POST /.search SearchRequest (RFC 7644 §3.4.3).
func (h *handler) parseSearchBody(rt *resourceType, body map[string]any) (listQuery, error) {
	lq := listQuery{startIndex: 1, count: h.cfg.MaxResults}
	if err := requireSchema(body, urnSearchRequest); err != nil {
		return lq, err
	}
	attrList := func(name string) (string, error) {
		v, _ := lookupFold(body, name)
		switch x := v.(type) {
		case nil:
			return "", nil
		case string:
			return x, nil
		case []any:
			parts := make([]string, 0, len(x))
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return "", badRequest(errInvalidValue, "%s must be an array of strings", name)
				}
				parts = append(parts, s)
			}
			return strings.Join(parts, ","), nil
		}
		return "", badRequest(errInvalidValue, "%s must be an array of strings", name)
	}
	inc, err := attrList("attributes")
	if err != nil {
		return lq, err
	}
	exc, err := attrList("excludedAttributes")
	if err != nil {
		return lq, err
	}
	lq.proj = projection{include: parseAttrRefs(rt, inc), exclude: parseAttrRefs(rt, exc)}
	for _, f := range []struct {
		name string
		dst  *int
	}{{"startIndex", &lq.startIndex}, {"count", &lq.count}} {
		name, dst := f.name, f.dst
		v, ok := lookupFold(body, name)
		if !ok || v == nil {
			continue
		}
		n, ok := v.(json.Number)
		i, err := n.Int64()
		if !ok || err != nil || i != int64(int(i)) {
			return lq, badRequest(errInvalidValue, "%s must be an integer", name)
		}
		*dst = int(i)
	}
	fv, hasFilter := lookupFold(body, "filter")
	fs, ok := fv.(string)
	if hasFilter && fv != nil && !ok {
		return lq, badRequest(errInvalidFilter, "filter must be a string")
	}
	return lq, h.finishListQuery(&lq, fs, hasFilter && fv != nil)
}

// finishListQuery clamps paging (startIndex < 1 means 1, a negative count
// 0, RFC 7644 §3.4.2.4) and parses the filter.
func (h *handler) finishListQuery(lq *listQuery, f string, hasFilter bool) error {
	lq.startIndex = max(lq.startIndex, 1)
	lq.count = min(max(lq.count, 0), h.cfg.MaxResults)
	if !hasFilter {
		return nil
	}
	if strings.TrimSpace(f) == "" {
		return badRequest(errInvalidFilter, "filter is empty")
	}
	parsed, err := filter.Parse(f)
	if err != nil {
		return badRequest(errInvalidFilter, "invalid filter: %v", err)
	}
	lq.filter, lq.rawFilter = parsed, f
	return nil
}

// mentions reports whether the filter may refer to attr, so rendering for
// matching loads it only then. A false positive only costs a read.
func (lq listQuery) mentions(attr string) bool {
	return strings.Contains(strings.ToLower(lq.rawFilter), attr)
}

func (h *handler) listUsersHTTP(w http.ResponseWriter, r *http.Request) error {
	lq, err := h.parseListQuery(h.users, r.URL.Query())
	if err != nil {
		return err
	}
	return list(h, w, r, lq, h.userLister())
}

func (h *handler) searchUsers(w http.ResponseWriter, r *http.Request) error {
	lq, err := h.searchQuery(w, r, h.users)
	if err != nil {
		return err
	}
	return list(h, w, r, lq, h.userLister())
}

func (h *handler) listGroupsHTTP(w http.ResponseWriter, r *http.Request) error {
	lq, err := h.parseListQuery(h.groups, r.URL.Query())
	if err != nil {
		return err
	}
	return list(h, w, r, lq, h.groupLister())
}

func (h *handler) searchGroups(w http.ResponseWriter, r *http.Request) error {
	lq, err := h.searchQuery(w, r, h.groups)
	if err != nil {
		return err
	}
	return list(h, w, r, lq, h.groupLister())
}

func (h *handler) searchQuery(w http.ResponseWriter, r *http.Request, rt *resourceType) (listQuery, error) {
	body, err := h.readBody(w, r)
	if err != nil {
		return listQuery{}, err
	}
	return h.parseSearchBody(rt, body)
}

// lister adapts the store's users or groups to the shared list logic.
type lister[T any] struct {
	rt    *resourceType
	count func(context.Context) (int, error)
	page  func(ctx context.Context, cursor string, limit int) (store.Page[T], error)
	// indexed answers an equality filter from an index; ok=false means the
	// filter needs a walk.
	indexed func(ctx context.Context, attr, val string) (items []T, ok bool, err error)
	render  func(ctx context.Context, x T, base string, withExtra bool) (map[string]any, error)
	// extra is the attribute that costs a read per resource: User.groups
	// or Group.members.
	extra string
}

func (h *handler) userLister() lister[*store.Identity] {
	return lister[*store.Identity]{
		rt:    h.users,
		count: h.st.CountIdentities,
		page: func(ctx context.Context, cursor string, limit int) (store.Page[*store.Identity], error) {
			p, err := h.st.ListIdentities(ctx, cursor, limit)
			p.Items = slices.DeleteFunc(p.Items, func(i *store.Identity) bool { return i == nil || i.Deleted })
			return p, err
		},
		indexed: h.indexedUsers,
		render:  h.renderUser,
		extra:   "groups",
	}
}

func (h *handler) groupLister() lister[*store.Group] {
	return lister[*store.Group]{
		rt:      h.groups,
		count:   h.st.CountGroups,
		page:    h.st.ListGroups,
		indexed: h.indexedGroups,
		render:  h.renderGroup,
		extra:   "members",
	}
}

// list answers a list or .search request. totalResults is exact: without
// a filter it is the store's count; with one, every candidate is matched.
func list[T any](h *handler, w http.ResponseWriter, r *http.Request, lq listQuery, l lister[T]) error {
	ctx := r.Context()
	base := h.baseURL(r)
	win := &window[T]{skip: lq.startIndex - 1, count: lq.count}
	if lq.filter == nil {
		gen := h.cursors.generation(l.rt.Endpoint)
		total, err := l.count(ctx)
		if err != nil {
			return fmt.Errorf("count %s: %w", l.rt.Endpoint, err)
		}
		if win.count > 0 && win.skip < total {
			cursor := ""
			if win.skip > 0 {
				if c, ok := h.cursors.get(cursorKey{l.rt.Endpoint, lq.startIndex}, total); ok {
					cursor, win.skip = c, 0
				}
			}
			next, err := seek(ctx, l.page, cursor, win.skip+win.count, win.add)
			if err != nil {
				return err
			}
			if next != "" {
				h.cursors.put(cursorKey{l.rt.Endpoint, lq.startIndex + win.count}, next, total, gen)
			}
		}
		win.total = total
	} else {
		withExtra := lq.mentions(strings.ToLower(l.extra))
		match := func(x T) (bool, error) {
			res, err := l.render(ctx, x, base, withExtra)
			if err != nil {
				return false, err
			}
			if lq.filter.Matches(res, l.rt.caseExact) {
				win.add(x)
			}
			return true, nil
		}
		var candidates []T
		indexed := false
		if attr, val, ok := lq.filter.Equality(); ok {
			var err error
			if candidates, indexed, err = l.indexed(ctx, attr, val); err != nil {
				return err
			}
		}
		var err error
		if indexed {
			for _, x := range candidates {
				if _, err = match(x); err != nil {
					break
				}
			}
		} else {
			err = walk(ctx, l.page, scanPage, match)
		}
		if err != nil {
			return err
		}
	}
	withExtra := lq.proj.wants(l.rt, l.extra)
	items := make([]any, 0, len(win.items))
	for _, x := range win.items {
		res, err := l.render(ctx, x, base, withExtra)
		if err != nil {
			return err
		}
		items = append(items, lq.proj.apply(l.rt, res))
	}
	writeJSON(w, http.StatusOK, newListResponse(win.total, lq.startIndex, items))
	return nil
}

// window collects the requested page while counting every match.
type window[T any] struct {
	skip, count int
	total       int
	items       []T
}

func (wd *window[T]) add(x T) {
	wd.total++
	if wd.total > wd.skip && len(wd.items) < wd.count {
		wd.items = append(wd.items, x)
	}
}

// seek reads the next n resources after cursor ("" for the first), asking
// each page for no more than it still needs, so the cursor it returns
// continues exactly after the n-th: the next page's start. It returns ""
// when the listing ended first.
func seek[T any](ctx context.Context, page func(context.Context, string, int) (store.Page[T], error), cursor string, n int, fn func(T)) (string, error) {
	for n > 0 {
		p, err := page(ctx, cursor, min(n, scanPage))
		if err != nil {
			return "", fmt.Errorf("list: %w", err)
		}
		if len(p.Items) > n {
			// A store returning more than asked: its cursor is past where
			// we stop, so there is nothing to remember.
			for _, x := range p.Items[:n] {
				fn(x)
			}
			return "", nil
		}
		for _, x := range p.Items {
			fn(x)
		}
		n -= len(p.Items)
		if p.Next == "" || p.Next == cursor {
			return "", nil
		}
		cursor = p.Next
	}
	return cursor, nil
}

// walk reads a listing page by page (a Query in DynamoDB, never a Scan)
// until fn says stop.
func walk[T any](ctx context.Context, page func(context.Context, string, int) (store.Page[T], error), size int, fn func(T) (bool, error)) error {
	cursor := ""
	for {
		p, err := page(ctx, cursor, size)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		for _, x := range p.Items {
			more, err := fn(x)
			if err != nil || !more {
				return err
			}
		}
		if p.Next == "" || p.Next == cursor {
			return nil
		}
		cursor = p.Next
	}
}

// indexedUsers answers `userName eq`, `externalId eq` and `id eq`.
func (h *handler) indexedUsers(ctx context.Context, attr, val string) ([]*store.Identity, bool, error) {
	switch attr {
	case "username", "externalid", "id":
	default:
		return nil, false, nil
	}
	if !keyOK(val) {
		return nil, true, nil // longer than anything we store
	}
	var out []*store.Identity
	var err error
	switch attr {
	case "username":
		var ident *store.Identity
		if ident, err = h.st.GetIdentityByUserName(ctx, val); err == nil {
			out = []*store.Identity{ident}
		}
	case "externalid":
		out, err = h.st.FindIdentitiesByExternalID(ctx, val)
		slices.SortFunc(out, func(a, b *store.Identity) int { return strings.Compare(a.ID, b.ID) })
	case "id":
		var ident *store.Identity
		if ident, err = h.st.GetIdentity(ctx, val); err == nil {
			out = []*store.Identity{ident}
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("look up %s: %w", attr, err)
	}
	return slices.DeleteFunc(out, func(i *store.Identity) bool { return i == nil || i.Deleted }), true, nil
}

// indexedGroups answers `displayName eq` and `id eq`.
func (h *handler) indexedGroups(ctx context.Context, attr, val string) ([]*store.Group, bool, error) {
	if attr != "displayname" && attr != "id" {
		return nil, false, nil
	}
	if !keyOK(val) {
		return nil, true, nil
	}
	var g *store.Group
	var err error
	if attr == "id" {
		g, err = h.st.GetGroup(ctx, val)
	} else {
		g, err = h.st.GetGroupByDisplayName(ctx, val)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("look up group %s: %w", attr, err)
	}
	return []*store.Group{g}, true, nil
}
