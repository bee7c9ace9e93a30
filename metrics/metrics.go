// Package metrics is dk's Prometheus instrumentation: router requests per
// app, deploys, builds, reconciler passes, and the containers running per
// app and process type (read from the runtime at scrape time). It hooks
// into the router (router.Proxy.Observe) and the release manager
// (releases.Observer) without either importing it.
package metrics

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/dkhq/dk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Containers lists containers; dk.Runtime implements it.
type Containers interface {
	Containers(ctx context.Context, app string) ([]dk.Container, error)
}

// Metrics holds dk's collectors in their own registry.
type Metrics struct {
	reg *prometheus.Registry

	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	deploys   *prometheus.CounterVec
	deployDur *prometheus.HistogramVec
	builds    *prometheus.CounterVec
	buildDur  *prometheus.HistogramVec
	passes    prometheus.Counter
	passErrs  prometheus.Counter

	// perApp caches each app's request children, so a request costs no
	// label lookup or allocation.
	perApp sync.Map // app → *appMetrics
}

type appMetrics struct {
	classes [6]prometheus.Counter // 1xx … 5xx; [0] for anything else
	latency prometheus.Observer
}

// New makes the collectors. cs, when set, is asked for the running
// containers at each scrape.
func New(cs Containers) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dk_router_requests_total",
			Help: "HTTP requests the router answered, by app (\"\" for hosts naming no app) and status class.",
		}, []string{"app", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dk_router_request_duration_seconds",
			Help:    "Time the router took to answer a request, by app.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"app"}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dk_deploys_total",
			Help: "Releases rolled out, by app, kind (deploy, config, rollback) and outcome (succeeded, failed).",
		}, []string{"app", "kind", "outcome"}),
		deployDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dk_deploy_duration_seconds",
			Help:    "Time from the start of a deploy (including a push's build) to its outcome.",
			Buckets: []float64{.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"app", "kind", "outcome"}),
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dk_builds_total",
			Help: "Image builds, by app and outcome.",
		}, []string{"app", "outcome"}),
		buildDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dk_build_duration_seconds",
			Help:    "Time an image build took, by app and outcome.",
			Buckets: []float64{.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200},
		}, []string{"app", "outcome"}),
		passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dk_reconcile_passes_total",
			Help: "Reconciler passes over one app.",
		}),
		passErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dk_reconcile_errors_total",
			Help: "Reconciler passes that ended in an error.",
		}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.deploys, m.deployDur, m.builds, m.buildDur, m.passes, m.passErrs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cs != nil {
		m.reg.MustRegister(&containerCollector{cs: cs})
	}
	return m
}

// Registry is where the collectors are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// ObserveRequest records one router request (router.Proxy.Observe).
func (m *Metrics) ObserveRequest(app string, status int, d time.Duration) {
	am, ok := m.perApp.Load(app)
	if !ok {
		a := &appMetrics{latency: m.latency.WithLabelValues(app)}
		for i, c := range classNames {
			a.classes[i] = m.requests.WithLabelValues(app, c)
		}
		am, _ = m.perApp.LoadOrStore(app, a)
	}
	a := am.(*appMetrics)
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	a.classes[class].Inc()
	a.latency.Observe(d.Seconds())
}

// DeployFinished implements releases.Observer.
func (m *Metrics) DeployFinished(app, kind, outcome string, d time.Duration) {
	m.deploys.WithLabelValues(app, kind, outcome).Inc()
	m.deployDur.WithLabelValues(app, kind, outcome).Observe(d.Seconds())
}

// BuildFinished implements releases.Observer.
func (m *Metrics) BuildFinished(app, outcome string, d time.Duration) {
	m.builds.WithLabelValues(app, outcome).Inc()
	m.buildDur.WithLabelValues(app, outcome).Observe(d.Seconds())
}

// ReconcilePass implements releases.Observer.
func (m *Metrics) ReconcilePass(err error) {
	m.passes.Inc()
	if err != nil {
		m.passErrs.Inc()
	}
}

// ForgetApp drops a destroyed app's request series.
func (m *Metrics) ForgetApp(app string) {
	m.perApp.Delete(app)
	m.requests.DeletePartialMatch(prometheus.Labels{"app": app})
	m.latency.DeletePartialMatch(prometheus.Labels{"app": app})
}

// containerCollector reports running containers by app and process type,
// asking the runtime at scrape time (so the figure is never stale).
type containerCollector struct {
	cs Containers
}

var (
	runningDesc = prometheus.NewDesc("dk_containers_running", "Containers running, by app and process type.", []string{"app", "process"}, nil)
	scrapeErr   = prometheus.NewDesc("dk_containers_scrape_error", "1 when the runtime could not list containers at this scrape.", nil, nil)
)

func (c *containerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningDesc
	ch <- scrapeErr
}

func (c *containerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := c.cs.Containers(ctx, "")
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErr, prometheus.GaugeValue, 0)
	type key struct{ app, proc string }
	n := map[key]int{}
	for _, c := range cs {
		if c.State == "running" {
			n[key{c.App, c.Process}]++
		} else if _, ok := n[key{c.App, c.Process}]; !ok {
			n[key{c.App, c.Process}] = 0
		}
	}
	for k, v := range n {
		ch <- prometheus.MustNewConstMetric(runningDesc, prometheus.GaugeValue, float64(v), k.app, k.proc)
	}
}
