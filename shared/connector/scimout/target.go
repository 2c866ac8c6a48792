package scimout

import (
	"context"

	"github.com/learnerlink/learnerlink/shared/connector"
)

// Target returns the connector as the worker should hold it: always a
// connector.Connector and connector.Lister, a connector.GroupSetter only
// when Profile.GroupsSupported, and a connector.Enroller only when
// Profile.TagsAttribute is set. The worker discovers optional
// capabilities by type assertion, so a method that could only fail must
// not be there at all.
func (c *Connector) Target() connector.Connector {
	b := base{c}
	switch groups, tags := c.cfg.Profile.GroupsSupported, c.tags != nil; {
	case groups && tags:
		return withGroupsAndTags{b}
	case groups:
		return withGroups{b}
	case tags:
		return withTags{b}
	}
	return b
}

// base forwards the methods every profile supports.
type base struct{ c *Connector }

func (b base) Get(ctx context.Context, id string) (*connector.Learner, error) {
	return b.c.Get(ctx, id)
}
func (b base) Find(ctx context.Context, k connector.Key) ([]connector.Learner, error) {
	return b.c.Find(ctx, k)
}
func (b base) Create(ctx context.Context, l connector.Learner) (string, error) {
	return b.c.Create(ctx, l)
}
func (b base) Update(ctx context.Context, l connector.Learner) error { return b.c.Update(ctx, l) }
func (b base) List(ctx context.Context, cursor string) ([]connector.Learner, string, error) {
	return b.c.List(ctx, cursor)
}

type withGroups struct{ base }

func (w withGroups) SetGroups(ctx context.Context, learnerID string, groups []string) error {
	return w.c.setGroups(ctx, learnerID, groups)
}

type withTags struct{ base }

func (w withTags) Enroll(ctx context.Context, learnerID string, e connector.Enrollment) error {
	return w.c.enroll(ctx, learnerID, e)
}

type withGroupsAndTags struct{ base }

func (w withGroupsAndTags) SetGroups(ctx context.Context, learnerID string, groups []string) error {
	return w.c.setGroups(ctx, learnerID, groups)
}

func (w withGroupsAndTags) Enroll(ctx context.Context, learnerID string, e connector.Enrollment) error {
	return w.c.enroll(ctx, learnerID, e)
}

var (
	_ connector.Lister      = base{}
	_ connector.GroupSetter = withGroups{}
	_ connector.Enroller    = withTags{}
	_ connector.GroupSetter = withGroupsAndTags{}
	_ connector.Enroller    = withGroupsAndTags{}
)
