// Package engine is dk's container runtime on a Docker Engine: it implements
// dk.Runtime with the Docker SDK.
//
// Every container it makes belongs to one dk installation (the instance) and
// carries the label dk.instance=<instance>; the runtime lists, inspects, stops
// and reads the logs of only those containers. Containers join a user-defined
// bridge network named after the instance, and the router reaches them on
// their container IP, which survives restarts (published host ports do not).
// Docker itself restarts crashed containers (restart policy unless-stopped,
// with its own backoff), so they also survive dkd and engine restarts.
//
// Nothing is ever pulled: images are built into the engine's store by dk.
package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/dkhq/dk"
)

// Labels dk puts on its containers (and the instance label on its network).
const (
	LabelInstance = "dk.instance"
	LabelApp      = "dk.app"
	LabelRelease  = "dk.release"
	LabelProcess  = "dk.process"
	LabelIndex    = "dk.index"
	LabelPort     = "dk.port"
)

// Log rotation for every container (json-file driver).
const (
	logMaxSize  = "10m"
	logMaxFiles = "3"
)

// watchRetry is how long Watch waits before resubscribing after a stream error.
const watchRetry = time.Second

// Runtime runs one dk installation's containers on a Docker Engine.
type Runtime struct {
	docker   *client.Client
	instance string
	logger   *slog.Logger
}

var _ dk.Runtime = (*Runtime)(nil)

// New returns a runtime for one dk installation named instance (e.g. "dk"):
// every container it makes carries label dk.instance=<instance>, and it only
// ever lists or touches containers with that label. It ensures a user-defined
// bridge network named instance exists, creating it when missing (a
// concurrent create by another process is tolerated).
func New(ctx context.Context, docker *client.Client, instance string, logger *slog.Logger) (*Runtime, error) {
	if docker == nil {
		return nil, errors.New("engine: nil docker client")
	}
	if instance == "" {
		return nil, errors.New("engine: empty instance name")
	}
	if logger == nil {
		logger = slog.Default()
	}
	// Negotiate now, once: the SDK's lazy negotiation on first use races
	// with concurrent first calls (some read the version without its lock).
	docker.NegotiateAPIVersion(ctx)
	r := &Runtime{docker: docker, instance: instance, logger: logger.With("instance", instance)}
	if err := r.ensureNetwork(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Instance returns the installation name the runtime was made for.
func (r *Runtime) Instance() string { return r.instance }

// Network returns the name of the bridge network containers join.
func (r *Runtime) Network() string { return r.instance }

// ensureNetwork finds the instance's network by exact name, creating it when
// missing. Lookup is by listing, not NetworkInspect: inspect also matches ID
// prefixes, so a short instance name could hit an unrelated network.
//
// Engine 20.10's duplicate-name check is racy: concurrent creates can all
// succeed, leaving several networks with one name, which then makes the name
// ambiguous. So after creating, racers converge on the oldest network (ties
// broken by ID) and remove the others while they are still empty.
func (r *Runtime) ensureNetwork(ctx context.Context) error {
	nets, err := r.networks(ctx)
	if err != nil || len(nets) == 1 {
		return err
	}
	if len(nets) == 0 {
		_, err := r.docker.NetworkCreate(ctx, r.instance, network.CreateOptions{
			Driver: "bridge",
			Labels: map[string]string{LabelInstance: r.instance},
		})
		if err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("create network %s: %w", r.instance, err)
		}
		if err == nil {
			r.logger.Info("created network", "network", r.instance)
		}
	}
	for attempt := 0; ; attempt++ {
		nets, err := r.networks(ctx)
		if err != nil {
			return err
		}
		switch {
		case len(nets) == 1:
			return nil
		case len(nets) == 0:
			return fmt.Errorf("create network %s: it vanished after creation", r.instance)
		case attempt == 5:
			return fmt.Errorf("network name %s is ambiguous: %d networks have it; remove all but one", r.instance, len(nets))
		}
		sort.Slice(nets, func(i, j int) bool {
			if !nets[i].Created.Equal(nets[j].Created) {
				return nets[i].Created.Before(nets[j].Created)
			}
			return nets[i].ID < nets[j].ID
		})
		for _, n := range nets[1:] {
			// Fails harmlessly when in use or already removed by another racer.
			if err := r.docker.NetworkRemove(ctx, n.ID); err == nil {
				r.logger.Info("removed duplicate network", "network", r.instance, "id", shortID(n.ID))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
}

// networks lists the networks named exactly like the instance.
func (r *Runtime) networks(ctx context.Context) ([]network.Summary, error) {
	list, err := r.docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", r.instance))})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var out []network.Summary
	for _, n := range list {
		if n.Name == r.instance { // the name filter matches substrings
			out = append(out, n)
		}
	}
	return out, nil
}

// Ping checks the engine.
func (r *Runtime) Ping(ctx context.Context) error {
	if _, err := r.docker.Ping(ctx); err != nil {
		return fmt.Errorf("ping docker: %w", err)
	}
	return nil
}

// Start creates and starts a container for spec and returns it. The container
// is named <instance>-<app>-<process>-<index>-v<release>-<6 hex>.
func (r *Runtime) Start(ctx context.Context, spec dk.ContainerSpec) (dk.Container, error) {
	if spec.Image == "" {
		return dk.Container{}, dk.Errorf(dk.EINVALID, "no image to run for %s %s.%d", spec.App, spec.Process, spec.Index)
	}
	suffix, err := randomHex(3)
	if err != nil {
		return dk.Container{}, err
	}
	name := fmt.Sprintf("%s-%s-%s-%d-v%d-%s", r.instance, spec.App, spec.Process, spec.Index, spec.Release, suffix)

	env := make([]string, 0, len(spec.Env))
	for _, k := range spec.Env.Keys() {
		env = append(env, k+"="+spec.Env[k])
	}
	cfg := &container.Config{
		Image: spec.Image,
		Env:   env,
		Labels: map[string]string{
			LabelInstance: r.instance,
			LabelApp:      spec.App,
			LabelRelease:  strconv.Itoa(spec.Release),
			LabelProcess:  spec.Process,
			LabelIndex:    strconv.Itoa(spec.Index),
			LabelPort:     strconv.Itoa(spec.Port),
		},
	}
	if spec.Command != "" {
		cfg.Cmd = []string{"/bin/sh", "-c", spec.Command}
	}
	useInit := true // docker-init as PID 1: forwards SIGTERM, reaps zombies
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(r.instance),
		RestartPolicy: restartPolicy(spec.OneOff),
		LogConfig: container.LogConfig{
			Type:   "json-file",
			Config: map[string]string{"max-size": logMaxSize, "max-file": logMaxFiles},
		},
		Init: &useInit,
	}
	// API 1.41 accepts only one network at create time.
	netcfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{r.instance: {}}}

	log := r.logger.With("app", spec.App, "release", spec.Release, "process", spec.Process, "index", spec.Index)
	var id string
	for attempt := 0; ; attempt++ {
		id, err = r.createAndStart(ctx, cfg, host, netcfg, name)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return dk.Container{}, fmt.Errorf("start container %s: %w", name, ctx.Err())
		}
		if !cerrdefs.IsNotFound(err) {
			return dk.Container{}, dk.Errorf(dk.EFAILED, "start %s %s.%d: %v", spec.App, spec.Process, spec.Index, err)
		}
		// The image is missing, or the network: `docker network prune`
		// removes it while no container uses it (20.10 notices at start).
		if _, ierr := r.docker.ImageInspect(ctx, spec.Image); cerrdefs.IsNotFound(ierr) {
			return dk.Container{}, dk.Errorf(dk.EFAILED, "image %s not found in the engine (dk never pulls images)", spec.Image)
		}
		if attempt > 0 {
			return dk.Container{}, fmt.Errorf("start container %s: %w", name, err)
		}
		if nerr := r.ensureNetwork(ctx); nerr != nil {
			return dk.Container{}, nerr
		}
	}
	log.Info("started container", "container", shortID(id), "name", name)
	c, err := r.Inspect(ctx, id)
	if err != nil {
		return dk.Container{}, fmt.Errorf("inspect started container %s: %w", name, err)
	}
	return c, nil
}

// createAndStart creates and starts a container, removing it when it does
// not start.
func (r *Runtime) createAndStart(ctx context.Context, cfg *container.Config, host *container.HostConfig, netcfg *network.NetworkingConfig, name string) (string, error) {
	created, err := r.docker.ContainerCreate(ctx, cfg, host, netcfg, nil, name)
	if err != nil {
		return "", err
	}
	if err := r.docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		r.remove(created.ID)
		return "", err
	}
	return created.ID, nil
}

// remove force-removes a container that failed to start, on a fresh context
// since the caller's may be what ended.
func (r *Runtime) remove(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		r.logger.Warn("remove failed container", "container", shortID(id), "err", err)
	}
}

// Containers lists this instance's containers, all apps when app is "",
// sorted by app, process, index and release. StartedAt is the container's
// creation time here (the list API has no start time); Inspect gives the time
// of the latest start.
func (r *Runtime) Containers(ctx context.Context, app string) ([]dk.Container, error) {
	list, err := r.list(ctx, app)
	if err != nil {
		return nil, err
	}
	out := make([]dk.Container, 0, len(list))
	for _, s := range list {
		c := r.fromLabels(s.ID, s.Labels)
		c.State = string(s.State)
		c.StartedAt = time.Unix(s.Created, 0).UTC()
		if s.NetworkSettings != nil {
			if ep := s.NetworkSettings.Networks[r.instance]; ep != nil {
				c.Addr = addr(ep.IPAddress, s.Labels[LabelPort])
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Process != b.Process {
			return a.Process < b.Process
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		if a.Release != b.Release {
			return a.Release < b.Release
		}
		return a.ID < b.ID
	})
	return out, nil
}

func (r *Runtime) list(ctx context.Context, app string) ([]container.Summary, error) {
	args := filters.NewArgs(filters.Arg("label", LabelInstance+"="+r.instance))
	if app != "" {
		args.Add("label", LabelApp+"="+app)
	}
	list, err := r.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return list, nil
}

// Inspect returns the current view of one of this instance's containers.
func (r *Runtime) Inspect(ctx context.Context, id string) (dk.Container, error) {
	info, err := r.inspect(ctx, id)
	if err != nil {
		return dk.Container{}, err
	}
	c := r.fromLabels(info.ID, info.Config.Labels)
	c.Restarts = info.RestartCount
	if info.State != nil {
		c.State = string(info.State.Status)
		c.ExitCode = info.State.ExitCode
		if t, err := time.Parse(time.RFC3339Nano, info.State.StartedAt); err == nil && t.Year() > 1 {
			c.StartedAt = t
		}
	}
	if info.NetworkSettings != nil {
		if ep := info.NetworkSettings.Networks[r.instance]; ep != nil {
			c.Addr = addr(ep.IPAddress, info.Config.Labels[LabelPort])
		}
	}
	return c, nil
}

// inspect returns the raw inspection of a container of this instance;
// dk.ENOTFOUND for a missing container or one of another instance.
func (r *Runtime) inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	info, err := r.docker.ContainerInspect(ctx, id)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return info, dk.Errorf(dk.ENOTFOUND, "container %s not found", shortID(id))
		}
		return info, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	if info.Config == nil || info.Config.Labels[LabelInstance] != r.instance {
		return info, dk.Errorf(dk.ENOTFOUND, "container %s not found", shortID(id))
	}
	return info, nil
}

func (r *Runtime) fromLabels(id string, labels map[string]string) dk.Container {
	release, _ := strconv.Atoi(labels[LabelRelease])
	index, _ := strconv.Atoi(labels[LabelIndex])
	return dk.Container{
		ID:      id,
		App:     labels[LabelApp],
		Release: release,
		Process: labels[LabelProcess],
		Index:   index,
	}
}

// addr is ip:port, or "" when the container has no IP (not running) or no port.
func addr(ip, port string) string {
	if ip == "" || port == "" || port == "0" {
		return ""
	}
	return net.JoinHostPort(ip, port)
}

// Stop sends SIGTERM, then SIGKILL after grace, and removes the container
// with its anonymous volumes. A container that is already gone is not an error.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	info, err := r.inspect(ctx, id)
	if err != nil {
		if dk.ErrorCode(err) == dk.ENOTFOUND && !r.foreign(ctx, id) {
			return nil
		}
		return err
	}
	timeout := int((grace + time.Second - 1) / time.Second) // whole seconds, rounded up
	if timeout < 0 {
		timeout = 0
	}
	if err := r.docker.ContainerStop(ctx, info.ID, container.StopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", shortID(id), err)
	}
	if err := r.docker.ContainerRemove(ctx, info.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil &&
		!cerrdefs.IsNotFound(err) && !isRemovalInProgress(err) {
		return fmt.Errorf("remove container %s: %w", shortID(id), err)
	}
	r.logger.Info("stopped container", "container", shortID(info.ID), "app", info.Config.Labels[LabelApp])
	return nil
}

// foreign reports whether id names an existing container of another instance
// (or of no dk at all), which Stop must refuse rather than call gone.
func (r *Runtime) foreign(ctx context.Context, id string) bool {
	info, err := r.docker.ContainerInspect(ctx, id)
	return err == nil && (info.Config == nil || info.Config.Labels[LabelInstance] != r.instance)
}

// isRemovalInProgress: removing a container another caller is removing
// answers 409 "removal of container … is already in progress".
func isRemovalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

// RemoveAll force-removes every container of this instance.
func (r *Runtime) RemoveAll(ctx context.Context) error {
	list, err := r.list(ctx, "")
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range list {
		err := r.docker.ContainerRemove(ctx, s.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) && !isRemovalInProgress(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", shortID(s.ID), err))
		}
	}
	return errors.Join(errs...)
}

func restartPolicy(oneOff bool) container.RestartPolicy {
	if oneOff {
		return container.RestartPolicy{Name: container.RestartPolicyDisabled}
	}
	return container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
}

// Wait waits until one of this instance's containers exits and returns its
// exit code.
func (r *Runtime) Wait(ctx context.Context, id string) (int, error) {
	if _, err := r.inspect(ctx, id); err != nil {
		return 0, err
	}
	okc, errc := r.docker.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case res := <-okc:
		if res.Error != nil && res.Error.Message != "" {
			return int(res.StatusCode), fmt.Errorf("wait for %s: %s", shortID(id), res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-errc:
		return 0, fmt.Errorf("wait for %s: %w", shortID(id), err)
	}
}

// TagImage gives the image src the extra reference dst.
func (r *Runtime) TagImage(ctx context.Context, src, dst string) error {
	if err := r.docker.ImageTag(ctx, src, dst); err != nil {
		if cerrdefs.IsNotFound(err) {
			return dk.Errorf(dk.EFAILED, "image %s not found in the engine", src)
		}
		return fmt.Errorf("tag %s as %s: %w", src, dst, err)
	}
	return nil
}

// RemoveImage removes an image reference, pruning untagged parents. An image
// that is already gone is not an error; one still used by a container is a
// dk.ECONFLICT. Removing one of several tags of an image only untags it.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	_, err := r.docker.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	switch {
	case err == nil:
		r.logger.Info("removed image", "image", ref)
		return nil
	case cerrdefs.IsNotFound(err):
		return nil
	case cerrdefs.IsConflict(err):
		return dk.Errorf(dk.ECONFLICT, "image %s is in use by a container", ref)
	default:
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
}

// Images lists the tags of this instance's images for app, the references
// <instance>/<app>:<tag>, sorted.
func (r *Runtime) Images(ctx context.Context, app string) ([]string, error) {
	repo := r.instance + "/" + app
	list, err := r.docker.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo+":*"))})
	if err != nil {
		return nil, fmt.Errorf("list images of %s: %w", app, err)
	}
	var out []string
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if strings.HasPrefix(tag, repo+":") {
				out = append(out, tag)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// watchedActions are the container events that change what runs.
var watchedActions = []events.Action{
	events.ActionStart, events.ActionDie, events.ActionDestroy,
	events.ActionStop, events.ActionKill, events.ActionOOM,
}

// Watch calls changed(app) for start, die, destroy, stop, kill and oom events
// of this instance's containers until ctx ends. After a stream error it waits
// briefly, calls changed("") (resync everything) and resubscribes, asking the
// engine to replay events since the last one it delivered.
func (r *Runtime) Watch(ctx context.Context, changed func(app string)) {
	args := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", LabelInstance+"="+r.instance),
	)
	for _, a := range watchedActions {
		args.Add("event", string(a))
	}
	var since string
	for {
		msgs, errs := r.docker.Events(ctx, events.ListOptions{Filters: args, Since: since})
		err := func() error {
			for {
				select {
				case m := <-msgs:
					if m.TimeNano != 0 {
						since = fmt.Sprintf("%d.%09d", m.TimeNano/1e9, m.TimeNano%1e9)
					}
					changed(m.Actor.Attributes[LabelApp])
				case err := <-errs:
					return err
				}
			}
		}()
		if ctx.Err() != nil {
			return
		}
		r.logger.Warn("docker event stream failed; resubscribing", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(watchRetry):
		}
		changed("")
	}
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
