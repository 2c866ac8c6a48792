package queue_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/learnerlink/learnerlink/shared/queue"
)

type recorder struct {
	got []queue.Intent
	err error
}

func (r *recorder) Enqueue(_ context.Context, in ...queue.Intent) error {
	r.got = append(r.got, in...)
	return r.err
}

func TestFanOut(t *testing.T) {
	a1 := queue.Intent{IdentityID: "a", Version: 1, Reason: "scim.create"}
	b2 := queue.Intent{IdentityID: "b", Version: 2, Target: "onelogin", Force: true}
	with := func(in queue.Intent, target string) queue.Intent { in.Target = target; return in }
	tests := []struct {
		name    string
		targets []string
		in      []queue.Intent
		want    []queue.Intent
	}{
		{"no targets passes through", nil, []queue.Intent{a1, b2}, []queue.Intent{a1, b2}},
		{"one target", []string{"absorb"}, []queue.Intent{a1}, []queue.Intent{with(a1, "absorb")}},
		{"each untargeted intent once per target, in order",
			[]string{"absorb", "lessonly", "onelogin"}, []queue.Intent{a1, b2},
			[]queue.Intent{with(a1, "absorb"), with(a1, "lessonly"), with(a1, "onelogin"), b2}},
		{"targeted passes through", []string{"absorb", "onelogin"}, []queue.Intent{b2}, []queue.Intent{b2}},
		{"nothing", []string{"absorb"}, nil, []queue.Intent{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			if err := (queue.FanOut{Next: &r, Targets: tt.targets}).Enqueue(context.Background(), tt.in...); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.got, tt.want) && !(len(r.got) == 0 && len(tt.want) == 0) {
				t.Errorf("enqueued %+v, want %+v", r.got, tt.want)
			}
		})
	}
}

func TestFanOutError(t *testing.T) {
	boom := errors.New("boom")
	r := &recorder{err: boom}
	err := queue.FanOut{Next: r, Targets: []string{"x"}}.Enqueue(context.Background(), queue.Intent{IdentityID: "a"})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}
