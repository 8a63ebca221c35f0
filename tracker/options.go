package tracker

import (
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
)

// Option sets an injected collaborator of a Server, a store or a registry.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers metrics on reg (default: none).
func WithRegisterer(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

func applyOptions(opts []Option) options {
	o := options{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// register registers cs on o.reg, if any.
func (o options) register(cs ...prometheus.Collector) error {
	if o.reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := o.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
