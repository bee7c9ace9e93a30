// Command bench measures dk's figures beside their baselines, in one run on
// this machine, and prints each as a ratio:
//
//   - config:set → new release serving, vs the floor: `docker run` of the
//     same image to its first HTTP answer (SDK create+start, poll the
//     container IP);
//   - first git push → serving (build included), for reference;
//   - a request through dk's router, vs the same request straight to the
//     container.
//
// It drives the real bin/dkd with the real git and ssh clients. Run it with
// `make bench`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/dkhq/dk/internal/dockertest"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

var (
	rounds   = flag.Int("n", 5, "rounds per deploy figure")
	requests = flag.Int("requests", 2000, "requests per router figure")
	dkd      = flag.String("dkd", "bin/dkd", "dkd binary")
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type figure struct {
	name, baseline string
	dk, base       time.Duration
}

func run() error {
	ctx := context.Background()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	if err := dockertest.EnsureBusybox(ctx, cli); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "dkbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	instance := fmt.Sprintf("dkbench-%d", os.Getpid())
	defer cleanup(cli, instance)

	key := filepath.Join(work, "id_admin")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	data := filepath.Join(work, "data")
	srv := exec.Command(*dkd, "serve", "--data", data, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--domain", "localhost", "--admin-key", key+".pub", "--instance", instance)
	logf, _ := os.Create(filepath.Join(work, "dkd.log"))
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start %s (run make build first): %w", *dkd, err)
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	sshAddr, httpAddr, err := waitReady(filepath.Join(data, "dkd.json"))
	if err != nil {
		return err
	}
	_, sshPort, _ := net.SplitHostPort(sshAddr)
	sshCmd := fmt.Sprintf("ssh -F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -i %s", key)

	// The app: busybox httpd printing $GREETING.
	app := filepath.Join(work, "app")
	os.MkdirAll(app, 0o755)
	os.WriteFile(filepath.Join(app, "Dockerfile"), []byte("FROM "+dockertest.BusyboxImage+"\nCMD [\"sh\", \"-c\", \"mkdir -p /www && echo \\\"$GREETING\\\" > /www/index.html && exec httpd -f -p $PORT -h /www\"]\n"), 0o644)
	git := func(args ...string) error {
		c := exec.Command("git", args...)
		c.Dir = app
		c.Env = append(os.Environ(), "GIT_SSH_COMMAND="+sshCmd, "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@b", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@b")
		out, err := c.CombinedOutput()
		if err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	for _, a := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-qm", "bench"}} {
		if err := git(a...); err != nil {
			return err
		}
	}
	t0 := time.Now()
	if err := git("push", "-q", fmt.Sprintf("ssh://dk@127.0.0.1:%s/bench", sshPort), "main"); err != nil {
		return err
	}
	firstPush := time.Since(t0)

	// config:set → serving the new value.
	var configSet []time.Duration
	for i := 0; i < *rounds; i++ {
		want := fmt.Sprintf("round-%d", i)
		t0 := time.Now()
		c := exec.Command("ssh", append(strings.Fields(sshCmd)[1:], "-p", sshPort, "dk@127.0.0.1", "config:set", "bench", "GREETING="+want)...)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("config:set: %v %s", err, out)
		}
		if err := waitBody(httpAddr, "bench.localhost", want, 30*time.Second); err != nil {
			return err
		}
		configSet = append(configSet, time.Since(t0))
	}

	// Floor: docker run of the same image to its first HTTP answer.
	imgs, err := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", instance+"/bench:*"))})
	if err != nil || len(imgs) == 0 {
		return fmt.Errorf("bench image not found: %v", err)
	}
	img := imgs[0].RepoTags[0]
	var floor []time.Duration
	for i := 0; i < *rounds; i++ {
		d, err := dockerRun(ctx, cli, instance, img, fmt.Sprintf("floor-%d", i))
		if err != nil {
			return err
		}
		floor = append(floor, d)
	}

	// Router vs direct.
	direct, err := appAddr(ctx, cli, instance)
	if err != nil {
		return err
	}
	viaRouter := perRequest(httpAddr, "bench.localhost", *requests)
	straight := perRequest(direct, "bench.localhost", *requests)

	rollbacks, err := benchRollback(sshCmd, sshPort, httpAddr, *rounds) // deploys.go
	if err != nil {
		return err
	}
	figs := []figure{
		{"config:set → new release serving (median)", "docker run → first HTTP 200", median(configSet), median(floor)},
		{"rollback → old release serving (median)", "docker run → first HTTP 200", median(rollbacks), median(floor)},
		{"request through dk's router (mean)", "request straight to the container", viaRouter, straight},
	}
	fmt.Printf("dk bench — %s, %d rounds, %d requests\n\n", time.Now().UTC().Format(time.RFC3339), *rounds, *requests)
	fmt.Printf("%-44s %10s   %-36s %10s   %s\n", "figure", "dk", "baseline (same run)", "baseline", "ratio")
	for _, f := range figs {
		fmt.Printf("%-44s %10s   %-36s %10s   %.2fx\n", f.name, round(f.dk), f.baseline, round(f.base), float64(f.dk)/float64(f.base))
	}
	fmt.Printf("\nfirst git push → serving (build included): %s\n", round(firstPush))
	fmt.Printf("config:set rounds: %s\nrollback rounds:   %s\nfloor rounds:      %s\n", list(configSet), list(rollbacks), list(floor))
	pushes := 0
	push := func(msg string) error {
		pushes++
		if err := git("commit", "-q", "--allow-empty", "-m", msg); err != nil {
			return err
		}
		return git("push", "-q", fmt.Sprintf("ssh://dk@127.0.0.1:%s/bench", sshPort), "main")
	}
	if err := benchUnderLoad(sshCmd, sshPort, httpAddr, push); err != nil { // deploys.go
		return err
	}
	if !*buildpackBench {
		return nil
	}
	return benchBuildpacks(ctx, cli, instance) // buildpacks.go
}

func round(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Millisecond).String()
}

func list(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, round(d))
	}
	return strings.Join(s, " ")
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func waitReady(path string) (string, string, error) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			var r struct {
				SSHAddr  string `json:"ssh_addr"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal(b, &r) == nil {
				return r.SSHAddr, r.HTTPAddr, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", "", fmt.Errorf("dkd did not start (see its log)")
}

func waitBody(addr, host, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = host
		if resp, err := http.DefaultClient.Do(req); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(b), want) {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("%s never served %q", host, want)
}

// dockerRun is the floor: create and start a container of img on the same
// network and poll its IP until the first HTTP 200.
func dockerRun(ctx context.Context, cli *client.Client, netName, img, want string) (time.Duration, error) {
	t0 := time.Now()
	c, err := cli.ContainerCreate(ctx, &container.Config{Image: img, Env: []string{"PORT=5000", "GREETING=" + want}, Labels: map[string]string{"dkbench": netName}},
		&container.HostConfig{}, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}}, nil, "")
	if err != nil {
		return 0, err
	}
	defer cli.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	if err := cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return 0, err
	}
	info, err := cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		return 0, err
	}
	ip := info.NetworkSettings.Networks[netName].IPAddress
	if err := waitBody(net.JoinHostPort(ip, "5000"), "x", want, 30*time.Second); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

func appAddr(ctx context.Context, cli *client.Client, instance string) (string, error) {
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "dk.instance="+instance), filters.Arg("label", "dk.app=bench"))})
	if err != nil || len(cs) == 0 {
		return "", fmt.Errorf("bench container not found: %v", err)
	}
	n := cs[0].NetworkSettings.Networks[instance]
	return net.JoinHostPort(n.IPAddress, "5000"), nil
}

// perRequest is the mean time of n sequential keep-alive GETs.
func perRequest(addr, host string, n int) time.Duration {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return time.Since(t0) / time.Duration(n)
}

func cleanup(cli *client.Client, instance string) {
	ctx := context.Background()
	cs, _ := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "dk.instance="+instance))})
	for _, c := range cs {
		cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
	}
	imgs, _ := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", instance+"/*"))})
	for _, i := range imgs {
		cli.ImageRemove(ctx, i.ID, image.RemoveOptions{Force: true, PruneChildren: true})
	}
	cli.NetworkRemove(ctx, instance)
}
