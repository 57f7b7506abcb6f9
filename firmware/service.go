package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/firmware/manifest"
	"github.com/switchyard/switchyard/graph"
)

// Errors of the service's callers' mistakes, for errors.Is. Record errors
// are graph's: graph.ErrNotFound, graph.ErrConflict (an id taken) and
// *graph.InvalidError.
var (
	// ErrTooLarge: an image longer than the relay's limit.
	ErrTooLarge = errors.New("image too large")
	// ErrEmpty: an image without bytes.
	ErrEmpty = errors.New("image is empty")
	// ErrDigestMismatch: the image's sha256 is not the one the uploader
	// announced.
	ErrDigestMismatch = errors.New("sha256 mismatch")
	// ErrMislabelled: the image says it is another version than the one it
	// was uploaded as.
	ErrMislabelled = errors.New("image is mislabelled")
	// ErrConflict: a release or rollout that clashes with one the tenant
	// has (another image under the same version, rollouts that could offer
	// to the same device, raising a halted rollout). A record id that is
	// taken is graph.ErrConflict.
	ErrConflict = errors.New("conflict")
	// ErrInUse: a release a rollout still offers.
	ErrInUse = errors.New("release in use")
	// ErrNotOffered: a device reported on an update it was not offered.
	ErrNotOffered = errors.New("not offered")
)

// Blobs keeps image bytes per tenant, addressed by their sha256 (the relay
// gives its module store, runtime/modules, a kind for images). Put wraps
// ErrTooLarge, ErrEmpty or ErrDigestMismatch for the caller's mistakes;
// storing bytes the tenant already has returns the stored blob.
type Blobs interface {
	Put(tenant string, r io.Reader, limit int64, want string) (sum string, size int64, err error)
	Open(tenant, sum string) (*os.File, error)
	Delete(tenant, sum string) error
	// RemoveTenant removes every image of a tenant.
	RemoveTenant(tenant string) error
}

// Offer is the firmware_offer frame's content: a signed manifest and where
// to download the image.
type Offer struct {
	manifest.Offer
	URL string
}

// DownloadPath is where the gateway serves images: DownloadPath + sha256.
const DownloadPath = "/firmware/v1/"

// Offerer carries offers to connected devices (the gateway). It must not
// block, and must not call back into the service.
type Offerer interface {
	OfferFirmware(tenant, device string, o Offer) error
}

// Defaults of Options and of a rollout's settings.
const (
	DefaultMaxImageSize   = 64 << 20
	DefaultFlushInterval  = time.Second
	DefaultMaxFailureRate = 0.1
	DefaultMinResults     = 5
	DefaultResultTimeout  = time.Hour
)

// Options configure a Service.
type Options struct {
	Store   graph.Store // required
	Blobs   Blobs       // required
	Key     *Key        // required
	Offerer Offerer     // required before devices say hello; see SetOfferer
	// MaxImageSize bounds an upload; zero: DefaultMaxImageSize.
	MaxImageSize int64
	// FlushInterval is how often device histories and rollout counters are
	// written; zero: DefaultFlushInterval.
	FlushInterval time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
	// Now is the clock; nil: time.Now. Tests move it to expire results.
	Now func() time.Time
}

// Service is the update service. Its methods are safe for concurrent use.
type Service struct {
	o   Options
	log *slog.Logger
	m   *metrics
	now func() time.Time

	offerMu sync.RWMutex
	offerer Offerer

	mu      sync.Mutex // guards tenants (the map; each tenant has its own lock)
	tenants map[string]*tenant

	// writeMu orders writes of snapshots: one writer at a time, so a newer
	// snapshot of a record is never overwritten by an older one.
	writeMu sync.Mutex

	running atomic.Bool
	stop    chan struct{}
	stopped chan struct{}
	closed  sync.Once
}

// New returns a service; Load fills it from the store, Start begins writing
// behind.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Blobs == nil || o.Key == nil {
		return nil, errors.New("firmware: Options.Store, Options.Blobs and Options.Key are required")
	}
	if o.MaxImageSize <= 0 {
		o.MaxImageSize = DefaultMaxImageSize
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	return &Service{
		o: o, log: o.Logger, m: m, now: o.Now, offerer: o.Offerer,
		tenants: map[string]*tenant{},
		stop:    make(chan struct{}), stopped: make(chan struct{}),
	}, nil
}

// SetOfferer sets where offers go, for wiring where the gateway is built
// after the service.
func (s *Service) SetOfferer(o Offerer) {
	s.offerMu.Lock()
	s.offerer = o
	s.offerMu.Unlock()
}

func (s *Service) offer(tenant, device string, o Offer) error {
	s.offerMu.RLock()
	off := s.offerer
	s.offerMu.RUnlock()
	if off == nil {
		return errors.New("no gateway to carry offers")
	}
	return off.OfferFirmware(tenant, device, o)
}

// Load reads every tenant's releases, rollouts and device histories.
func (s *Service) Load(ctx context.Context) error {
	tenants, err := s.o.Store.ListTenants(ctx)
	if err != nil {
		return fmt.Errorf("firmware: load: %w", err)
	}
	for _, t := range tenants {
		if err := s.LoadTenant(ctx, t.ID); err != nil {
			return err
		}
	}
	return nil
}

// LoadTenant (re)reads one tenant's records, replacing what the service
// knew of it (a tenant created, or deleted: then it is forgotten).
func (s *Service) LoadTenant(ctx context.Context, id string) error {
	sc := s.o.Store.Tenant(id)
	releases, err := sc.Releases().List(ctx)
	if errors.Is(err, graph.ErrTenantNotFound) {
		s.mu.Lock()
		delete(s.tenants, id)
		s.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("firmware: load tenant %q: %w", id, err)
	}
	rollouts, err := sc.Rollouts().List(ctx)
	if err != nil {
		return fmt.Errorf("firmware: load tenant %q: %w", id, err)
	}
	histories, err := sc.FirmwareHistories().List(ctx)
	if err != nil {
		return fmt.Errorf("firmware: load tenant %q: %w", id, err)
	}
	t := newTenant(id)
	for _, r := range releases {
		t.addRelease(r)
	}
	for _, r := range rollouts {
		if _, err := time.ParseDuration(r.ResultTimeout); err != nil {
			return fmt.Errorf("firmware: load tenant %q: rollout %q: %w", id, r.ID, err)
		}
		t.rollouts[r.ID] = &rollout{Rollout: r}
	}
	for _, h := range histories {
		t.device(h.ID).load(h.Events)
	}
	s.mu.Lock()
	if old := s.tenants[id]; old != nil {
		// Connected devices stay known: only the records were reloaded.
		old.mu.Lock()
		for dev, d := range old.devices {
			if d.online {
				nd := t.device(dev)
				nd.online, nd.hello, nd.recordModel, nd.labels = true, d.hello, d.recordModel, d.labels
			}
		}
		old.mu.Unlock()
	}
	s.tenants[id] = t
	s.mu.Unlock()
	return nil
}

// TenantDeleted forgets a deleted tenant and removes its images (its
// records went with the tenant).
func (s *Service) TenantDeleted(id string) error {
	s.mu.Lock()
	delete(s.tenants, id)
	s.mu.Unlock()
	if err := s.o.Blobs.RemoveTenant(id); err != nil {
		return fmt.Errorf("firmware: tenant %q deleted: %w", id, err)
	}
	return nil
}

// tenantOf returns the state of a tenant the service knows, or nil.
func (s *Service) tenantOf(id string) *tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenants[id]
}

// tenantFor returns the state of a tenant, creating an empty one for a
// tenant created since Load.
func (s *Service) tenantFor(ctx context.Context, id string) (*tenant, error) {
	if t := s.tenantOf(id); t != nil {
		return t, nil
	}
	if _, err := s.o.Store.GetTenant(ctx, id); errors.Is(err, graph.ErrNotFound) {
		// Whichever way a backend says it, it is the tenant that is missing.
		return nil, fmt.Errorf("firmware: tenant %q: %w", id, graph.ErrTenantNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("firmware: tenant %q: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tenants[id]; t != nil {
		return t, nil
	}
	t := newTenant(id)
	s.tenants[id] = t
	return t, nil
}

// Start writes changes behind every FlushInterval, and expires offers whose
// devices never reported a result, until Close.
func (s *Service) Start() {
	if !s.running.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer close(s.stopped)
		tick := time.NewTicker(s.o.FlushInterval)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				s.expire()
				s.flush(context.Background())
			}
		}
	}()
}

// Close stops writing behind and writes what is left, within ctx.
func (s *Service) Close(ctx context.Context) error {
	s.closed.Do(func() { close(s.stop) })
	if s.running.Load() {
		select {
		case <-s.stopped:
		case <-ctx.Done():
		}
	}
	return s.flush(ctx)
}
