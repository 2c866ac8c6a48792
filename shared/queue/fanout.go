package queue

import "context"

// FanOut turns every untargeted intent into one intent per target, so each
// (identity, target) pair is its own ordered stream (its own FIFO message
// group) and a target that is down delays only its own stream. A targeted
// intent passes through unchanged. With no Targets it passes everything
// through.
type FanOut struct {
	Next    Enqueuer
	Targets []string
}

// Enqueue enqueues the fanned-out intents in one call to Next.
func (f FanOut) Enqueue(ctx context.Context, intents ...Intent) error {
	if len(f.Targets) == 0 {
		return f.Next.Enqueue(ctx, intents...)
	}
	out := make([]Intent, 0, len(intents)*len(f.Targets))
	for _, in := range intents {
		if in.Target != "" {
			out = append(out, in)
			continue
		}
		for _, t := range f.Targets {
			in.Target = t
			out = append(out, in)
		}
	}
	return f.Next.Enqueue(ctx, out...)
}
