package main

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/lisafs"
)

// warmup is run (and discarded) before the measured rounds of every
// configuration.
const warmup = 100 * time.Millisecond

// measure runs every op concurrently (one goroutine each) for about d and
// returns the total operations per second. Each goroutine checks the clock
// after every batch operations.
func measure(ops []func() error, d time.Duration, batch int) (float64, error) {
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		counts  = make([]int64, len(ops))
		ends    = make([]time.Time, len(ops))
		errs    = make([]error, len(ops))
		t0      time.Time
		barrier sync.WaitGroup
	)
	barrier.Add(len(ops))
	for i, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			barrier.Done()
			<-start
			deadline := t0.Add(d)
			var n int64
			for {
				for k := 0; k < batch; k++ {
					if err := op(); err != nil {
						errs[i] = err
						ends[i] = time.Now()
						counts[i] = n
						return
					}
					n++
				}
				if now := time.Now(); !now.Before(deadline) {
					ends[i] = now
					break
				}
			}
			counts[i] = n
		}()
	}
	barrier.Wait()
	t0 = time.Now()
	close(start)
	wg.Wait()
	var total int64
	last := t0
	for i := range ops {
		if errs[i] != nil {
			return 0, errs[i]
		}
		total += counts[i]
		if ends[i].After(last) {
			last = ends[i]
		}
	}
	return float64(total) / last.Sub(t0).Seconds(), nil
}

// measureCount runs every op count times concurrently and returns the
// total operations per second.
func measureCount(ops []func() error, count int) (float64, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(ops))
	t0 := time.Now()
	for i, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < count; k++ {
				if err := op(); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	return float64(count*len(ops)) / time.Since(t0).Seconds(), nil
}

// latencies runs op alone for about d, timing every call; it returns the
// mean, median and 99th percentile in nanoseconds.
func latencies(op func() error, d time.Duration, buf []time.Duration) (mean, p50, p99 float64, err error) {
	buf = buf[:0]
	t0 := time.Now()
	deadline := t0.Add(d)
	prev := t0
	for prev.Before(deadline) && len(buf) < cap(buf) {
		if err := op(); err != nil {
			return 0, 0, 0, err
		}
		now := time.Now()
		buf = append(buf, now.Sub(prev))
		prev = now
	}
	total := prev.Sub(t0)
	sort.Slice(buf, func(i, j int) bool { return buf[i] < buf[j] })
	n := len(buf)
	return float64(total.Nanoseconds()) / float64(n), float64(buf[n/2].Nanoseconds()), float64(buf[n*99/100].Nanoseconds()), nil
}

// runRPC starts both servers on the same tree and measures every workload
// and the empty RPC with gVisor's client against each.
func runRPC(o *options, root, sockBase string) error {
	bins := map[string]string{serverOurs: o.ours, serverGVisor: o.gofer}
	kinds := []string{serverOurs, serverGVisor}
	servers := map[string]*server{}
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	for _, k := range kinds {
		s, err := startServer(k, bins[k], root, sockBase+"-"+k)
		if err != nil {
			return err
		}
		servers[k] = s
	}
	alive := func() error {
		for _, k := range kinds {
			select {
			case err := <-servers[k].done:
				servers[k].done <- err
				return fmt.Errorf("%s server exited (%v): %s", k, err, servers[k].stderr.String())
			default:
			}
		}
		return nil
	}

	if o.parts["rtt"] {
		if err := runRTT(o, kinds, servers); err != nil {
			return err
		}
		if err := alive(); err != nil {
			return err
		}
	}
	if !o.parts["rpc"] {
		return nil
	}
	for _, wname := range o.workloads {
		w := findWorkload(wname)
		for _, n := range o.conns {
			for _, tr := range o.transports {
				if err := runConfig(o, w, n, tr, kinds, servers); err != nil {
					return fmt.Errorf("%s, %d conns, %s: %w", w.name, n, tr, err)
				}
				if err := alive(); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// runConfig measures one workload at one connection count and transport
// against every server, alternating the servers' order from round to round.
func runConfig(o *options, w *workload, n int, tr string, kinds []string, servers map[string]*server) error {
	progress("%s, %d conn(s), %s", w.name, n, tr)
	ops := map[string][]func() error{}
	var cleanups []func()
	defer func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}()
	threads := map[string]int{}
	for _, k := range kinds {
		for i := 0; i < n; i++ {
			c, err := dial(servers[k], tr == "channel")
			if err != nil {
				return err
			}
			cleanups = append(cleanups, c.close)
			op, cleanup, err := w.prepare(c, connTag(k, tr, i), i)
			if err != nil {
				return fmt.Errorf("%s: preparing: %w", k, err)
			}
			cleanups = append(cleanups, cleanup)
			ops[k] = append(ops[k], op)
		}
		threads[k] = threadCount(servers[k].pid())
	}
	results := map[string][]float64{}
	for _, k := range kinds {
		if o.count > 0 {
			break
		}
		if _, err := measure(ops[k], warmup, 1); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	for r := 0; r < o.rounds; r++ {
		order := kinds
		if r%2 == 1 {
			order = []string{kinds[1], kinds[0]}
		}
		for _, k := range order {
			var v float64
			var err error
			if o.count > 0 {
				v, err = measureCount(ops[k], o.count)
			} else {
				v, err = measure(ops[k], o.round, 1)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			results[k] = append(results[k], v)
		}
	}
	for _, k := range kinds {
		m := median(results[k])
		rec := map[string]any{
			"part":          "rpc",
			"workload":      w.name,
			"desc":          w.desc,
			"server":        k,
			"transport":     tr,
			"conns":         n,
			"unit":          "ops/s",
			"rounds":        results[k],
			"median":        m,
			"serverThreads": threads[k],
		}
		if w.bytesPerOp > 0 {
			rec["bytesPerOp"] = w.bytesPerOp
			rec["bytesPerSec"] = m * float64(w.bytesPerOp)
		}
		if w.itemsPerOp > 0 {
			rec["itemsPerOp"] = w.itemsPerOp
			rec["itemsPerSec"] = m * float64(w.itemsPerOp)
		}
		emit(rec)
	}
	return nil
}

// runRTT measures the cheapest round trip (FStat of the mount's root) from
// one client, per server and transport.
func runRTT(o *options, kinds []string, servers map[string]*server) error {
	buf := make([]time.Duration, 0, 8<<20)
	for _, tr := range o.transports {
		for _, k := range kinds {
			progress("empty RPC (FStat on the root), %s, %s", k, tr)
			c, err := dial(servers[k], tr == "channel")
			if err != nil {
				return err
			}
			var st lisafs.Statx
			op := func() error { return c.root.StatTo(ctx, &st) }
			if _, _, _, err := latencies(op, warmup, buf); err != nil {
				c.close()
				return err
			}
			var means, p50s, p99s []float64
			for r := 0; r < o.rounds; r++ {
				mean, p50, p99, err := latencies(op, o.rttRound, buf)
				if err != nil {
					c.close()
					return err
				}
				means = append(means, mean)
				p50s = append(p50s, p50)
				p99s = append(p99s, p99)
			}
			c.close()
			emit(map[string]any{
				"part":      "rtt",
				"server":    k,
				"transport": tr,
				"unit":      "ns/op",
				"rounds":    means,
				"median":    median(means),
				"p50":       median(p50s),
				"p99":       median(p99s),
			})
		}
	}
	return nil
}
