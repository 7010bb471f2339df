package main

// The backends part: the same gVisor client workloads against the host
// backend in lisafs-serve and against servers built on the Node package
// (interop/node-serve.mjs): a HostBackend, the same under a policy with an
// observer, and a MemoryBackend seeded with the same tree. It shows what
// serving from Node costs, and in particular the JavaScript hop a
// JavaScript backend pays on every operation.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/lisafs"
)

// Backend kinds, as they appear in the JSON output.
const (
	backendRust       = "rust-host"   // lisafs-serve: Rust core + host backend
	backendNodeHost   = "node-host"   // HostBackend in a Node process: the same Rust code, no JS per operation
	backendNodePolicy = "node-policy" // the same under a Policy and an observer (events batched to JS)
	backendNodeMemory = "node-memory" // MemoryBackend: every operation is a call into JavaScript
)

var backendKinds = []string{backendRust, backendNodeHost, backendNodePolicy, backendNodeMemory}

// backendWorkloads are the workloads of this part; pread_4k is defined here.
var backendWorkloads = []string{"walk_stat", "pread_4k", "open_read_close"}

// pread4k is PRead 4 KiB at offset 0 of a file opened once (1 RPC).
var pread4k = workload{
	name: "pread_4k",
	desc: "PRead 4 KiB at offset 0 of an open file (1 RPC)",
	prepare: func(c *conn, tag string, idx int) (func() error, func(), error) {
		ctl, ofd, err := c.open(unix.O_RDONLY, smallName(idx))
		if err != nil {
			return nil, nil, err
		}
		buf := make([]byte, smallSize)
		return func() error {
				n, err := ofd.Read(ctx, buf, 0)
				if err == nil && n != smallSize {
					err = fmt.Errorf("read %d bytes, want %d", n, smallSize)
				}
				return err
			}, func() {
				ofd.Close(ctx, true)
				ctl.Close(ctx, true)
			}, nil
	},
}

func backendWorkload(name string) *workload {
	if name == pread4k.name {
		return &pread4k
	}
	return findWorkload(name)
}

// startBackends starts the four servers on root.
func startBackends(o *options, root, sockBase string) (map[string]*server, error) {
	servers := map[string]*server{}
	node := func(kind string, args ...string) *exec.Cmd {
		return exec.Command(o.node, append([]string{o.nodeServe}, args...)...)
	}
	for _, k := range backendKinds {
		sock := sockBase + "-" + k
		var cmd *exec.Cmd
		switch k {
		case backendRust:
			cmd = exec.Command(o.ours, "--root", root, "--socket", sock)
		case backendNodeHost:
			cmd = node(k, "--backend", "host", "--root", root, "--socket", sock)
		case backendNodePolicy:
			cmd = node(k, "--backend", "policy-host", "--root", root, "--socket", sock)
		case backendNodeMemory:
			cmd = node(k, "--backend", "memory", "--root", root, "--seed", root, "--socket", sock)
		}
		s, err := startCmd(k, sock, cmd)
		if err != nil {
			for _, s := range servers {
				s.stop()
			}
			return nil, err
		}
		servers[k] = s
	}
	return servers, nil
}

// runBackends measures every backend workload and the empty RPC on the
// four servers, one connection, each transport.
func runBackends(o *options, root, sockBase string) error {
	if o.node == "" || o.nodeServe == "" {
		return fmt.Errorf("--node and --node-serve are required for the backends part")
	}
	servers, err := startBackends(o, root, sockBase)
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for _, tr := range o.transports {
		if err := backendRTT(o, tr, servers); err != nil {
			return err
		}
	}
	for _, name := range backendWorkloads {
		w := backendWorkload(name)
		for _, tr := range o.transports {
			if err := backendConfig(o, w, tr, servers); err != nil {
				return fmt.Errorf("%s, %s: %w", w.name, tr, err)
			}
		}
	}
	for _, tr := range o.transports {
		if err := backendHop(o, root, sockBase, tr); err != nil {
			return fmt.Errorf("hop, %s: %w", tr, err)
		}
	}
	return nil
}

// backendHop measures the JavaScript hop from inside the server: a
// MemoryBackend server with --hop-report records, per operation, how long
// the server thread waited on the bridge (its observer's durationNs), while
// one connection runs FStat on the root and then pread_4k for a round
// each. The records are emitted as they are (part "backends-hop").
func backendHop(o *options, root, sockBase, tr string) error {
	progress("backends: the JavaScript hop, measured in the server, %s", tr)
	report := sockBase + "-hop-" + tr + ".json"
	_ = os.Remove(report)
	sock := sockBase + "-hop"
	s, err := startCmd(backendNodeMemory, sock, exec.Command(o.node, o.nodeServe, "--backend", "memory", "--root", root, "--seed", root, "--socket", sock, "--hop-report", report))
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			s.stop()
		}
	}()
	c, err := dial(s, tr == "channel")
	if err != nil {
		return err
	}
	var st lisafs.Statx
	if _, err := measure([]func() error{func() error { return c.root.StatTo(ctx, &st) }}, o.rttRound, 1); err != nil {
		c.close()
		return err
	}
	op, cleanup, err := pread4k.prepare(c, "", 0)
	if err != nil {
		c.close()
		return err
	}
	_, err = measure([]func() error{op}, o.round, 1)
	cleanup()
	c.close()
	if err != nil {
		return err
	}
	s.stop()
	stopped = true
	b, err := os.ReadFile(report)
	if err != nil {
		return fmt.Errorf("no hop report from node-serve (%w): %s", err, s.stderr.String())
	}
	_ = os.Remove(report)
	var ops map[string]map[string]float64
	if err := json.Unmarshal(b, &ops); err != nil {
		return fmt.Errorf("hop report %q: %w", b, err)
	}
	for name, v := range ops {
		emit(map[string]any{
			"part":      "backends-hop",
			"server":    backendNodeMemory,
			"transport": tr,
			"op":        name,
			"unit":      "ns",
			"n":         v["n"],
			"mean":      v["meanNs"],
			"p50":       v["p50Ns"],
			"p90":       v["p90Ns"],
			"p99":       v["p99Ns"],
		})
	}
	return nil
}

// rotated returns kinds rotated left by r, so that each server runs first
// in turn from round to round.
func rotated(kinds []string, r int) []string {
	n := len(kinds)
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, kinds[(i+r)%n])
	}
	return out
}

func backendConfig(o *options, w *workload, tr string, servers map[string]*server) error {
	progress("backends: %s, %s", w.name, tr)
	ops := map[string]func() error{}
	for _, k := range backendKinds {
		c, err := dial(servers[k], tr == "channel")
		if err != nil {
			return err
		}
		defer c.close()
		op, cleanup, err := w.prepare(c, connTag(serverOurs, tr, 0), 0)
		if err != nil {
			return fmt.Errorf("%s: preparing: %w", k, err)
		}
		defer cleanup()
		ops[k] = op
		if _, err := measure([]func() error{op}, warmup, 1); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	results := map[string][]float64{}
	for r := 0; r < o.rounds; r++ {
		for _, k := range rotated(backendKinds, r) {
			v, err := measure([]func() error{ops[k]}, o.round, 1)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			results[k] = append(results[k], v)
		}
	}
	for _, k := range backendKinds {
		emit(map[string]any{
			"part":      "backends",
			"workload":  w.name,
			"desc":      w.desc,
			"server":    k,
			"transport": tr,
			"conns":     1,
			"unit":      "ops/s",
			"rounds":    results[k],
			"median":    median(results[k]),
		})
	}
	return nil
}

// backendRTT times FStat of the mount's root on each server: for the
// memory backend that is one call into JavaScript (MemoryControl.stat), for
// the others one fstat(2), so the difference is the JavaScript hop.
func backendRTT(o *options, tr string, servers map[string]*server) error {
	buf := make([]time.Duration, 0, 8<<20)
	conns := map[string]*conn{}
	defer func() {
		for _, c := range conns {
			c.close()
		}
	}()
	var st lisafs.Statx
	opOf := func(c *conn) func() error { return func() error { return c.root.StatTo(ctx, &st) } }
	for _, k := range backendKinds {
		c, err := dial(servers[k], tr == "channel")
		if err != nil {
			return err
		}
		conns[k] = c
		if _, _, _, err := latencies(opOf(c), warmup, buf); err != nil {
			return err
		}
	}
	progress("backends: empty RPC (FStat on the root), %s", tr)
	means, p50s, p99s := map[string][]float64{}, map[string][]float64{}, map[string][]float64{}
	for r := 0; r < o.rounds; r++ {
		for _, k := range rotated(backendKinds, r) {
			mean, p50, p99, err := latencies(opOf(conns[k]), o.rttRound, buf)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			means[k] = append(means[k], mean)
			p50s[k] = append(p50s[k], p50)
			p99s[k] = append(p99s[k], p99)
		}
	}
	for _, k := range backendKinds {
		emit(map[string]any{
			"part":      "backends-rtt",
			"server":    k,
			"transport": tr,
			"unit":      "ns/op",
			"rounds":    means[k],
			"median":    median(means[k]),
			"p50":       median(p50s[k]),
			"p99":       median(p99s[k]),
		})
	}
	return nil
}
