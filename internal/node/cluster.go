package node

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/switchboard/switchboard/internal/api"
	"github.com/switchboard/switchboard/internal/call"
	"github.com/switchboard/switchboard/internal/store"
)

// cluster is the node's part among the nodes sharing its database
// (docs/decisions.md, "Nodes"): its heartbeat, the closing of the calls of
// nodes that died, and the relay of live events between the nodes' SSE
// streams. On SQLite the node is alone: it still beats (a restart after a
// crash closes what it left open) but relays nothing.
type cluster struct {
	self  store.Node
	st    *store.Store
	rec   *store.CallWriter
	hub   *api.Hub
	log   *slog.Logger
	peers atomic.Int32 // other nodes alive at the last beat
	out   chan relayed
}

// relayed is one live event on its way between nodes.
type relayed struct {
	Node    string          `json:"n"`
	Account string          `json:"a"`
	Event   json.RawMessage `json:"e"`
}

const (
	beatEvery  = time.Second
	relayDelay = 20 * time.Millisecond
	relayQueue = 4096
)

func newCluster(self store.Node, st *store.Store, rec *store.CallWriter, hub *api.Hub, log *slog.Logger) *cluster {
	c := &cluster{self: self, st: st, rec: rec, hub: hub, log: log, out: make(chan relayed, relayQueue)}
	if st.Shared() {
		hub.SetRelay(api.Relay{
			Active: func() bool { return c.peers.Load() > 0 },
			Send: func(account string, ev []byte) {
				select {
				case c.out <- relayed{Node: self.ID, Account: account, Event: ev}:
				default: // the other nodes' streams lose it, as a slow stream would
				}
			},
		})
	}
	return c
}

// join closes what this node left open before its start (a crash) and
// beats once: call it before the node takes calls.
func (c *cluster) join(ctx context.Context) error {
	now := time.Now()
	n, err := c.rec.CloseCrashed(ctx, c.self.ID, now)
	if err != nil {
		return err
	}
	if n > 0 {
		c.log.Warn("closed the calls left open by a crash of this node", "node", c.self.ID, "calls", n, "cause", store.CauseCrashed)
	}
	if err := c.st.ClearOrbits(ctx, c.self.ID); err != nil { // what a crash left parked
		return err
	}
	c.self.Started = now
	if err := c.beat(ctx, now); err != nil {
		return err
	}
	return c.countPeers(ctx, now)
}

// countPeers counts the other nodes alive now: while there are none, live
// events are not relayed.
func (c *cluster) countPeers(ctx context.Context, now time.Time) error {
	nodes, err := c.st.Nodes(ctx, now)
	if err != nil {
		return err
	}
	c.peers.Store(int32(len(slices.DeleteFunc(nodes, func(n store.Node) bool { return n.ID == c.self.ID }))))
	return nil
}

func (c *cluster) beat(ctx context.Context, now time.Time) error {
	s := c.self
	s.Heartbeat = now
	return c.st.Beat(ctx, s)
}

// run beats every second, counts the other nodes and closes the calls of
// the dead ones, and relays live events, until ctx ends; then the node
// leaves the cluster.
func (c *cluster) run(ctx context.Context) {
	if c.st.Shared() {
		go c.relay(ctx)
		go c.listen(ctx)
	}
	tick := time.NewTicker(beatEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.st.LeaveCluster(lctx, c.self.ID); err != nil {
				c.log.Warn("leave the cluster", "err", err)
			}
			cancel()
			return
		case now := <-tick.C:
			c.tick(ctx, now)
		}
	}
}

func (c *cluster) tick(ctx context.Context, now time.Time) {
	ctx, cancel := context.WithTimeout(ctx, beatEvery)
	defer cancel()
	if err := c.beat(ctx, now); err != nil {
		c.log.Warn("heartbeat", "err", err)
		return
	}
	if err := c.countPeers(ctx, now); err != nil {
		c.log.Warn("list nodes", "err", err)
		return
	}
	dead, err := c.rec.ReapNodes(ctx, now)
	for id, calls := range dead {
		c.log.Warn("node lost: its calls in progress are closed", "node", id, "calls", calls, "cause", store.CauseNodeLost)
	}
	if err != nil {
		c.log.Warn("close the calls of a lost node", "err", err)
	}
}

// relay sends this node's live events to the others, as many as fit in
// one NOTIFY every relayDelay.
func (c *cluster) relay(ctx context.Context) {
	var batch []relayed
	size := 2
	flush := func() {
		if len(batch) == 0 {
			return
		}
		payload, err := json.Marshal(batch)
		batch, size = batch[:0], 2
		if err != nil {
			return
		}
		nctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := c.st.NotifyLive(nctx, string(payload)); err != nil && ctx.Err() == nil {
			c.log.Warn("relay live events", "err", err)
		}
	}
	tick := time.NewTicker(relayDelay)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-c.out:
			n := len(r.Event) + len(r.Account) + len(r.Node) + 20
			if n > store.MaxNotifyPayload {
				continue // too big to relay: only this node's streams have it
			}
			if size+n > store.MaxNotifyPayload {
				flush()
			}
			batch, size = append(batch, r), size+n
		case <-tick.C:
			flush()
		}
	}
}

// listen hands the other nodes' live events to this node's streams.
func (c *cluster) listen(ctx context.Context) {
	for ctx.Err() == nil {
		err := c.st.ListenLive(ctx, func(payload string) {
			var batch []relayed
			if json.Unmarshal([]byte(payload), &batch) != nil {
				return
			}
			for _, r := range batch {
				if r.Node != c.self.ID {
					c.hub.Deliver(r.Account, r.Event)
				}
			}
		})
		if ctx.Err() == nil {
			c.log.Warn("listen for live events", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

// liveCalls lists the calls in progress on every node: this node's from
// its engine, the others' from the records written at their start.
type liveCalls struct {
	*call.Engine
	st   *store.Store
	node string
	log  *slog.Logger
}

func (l liveCalls) Live(account string) []call.LiveCall {
	out := l.Engine.Live(account)
	if !l.st.Shared() {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	recs, err := l.st.OpenCalls(ctx, account, l.node, time.Now())
	if err != nil {
		l.log.Warn("list the other nodes' live calls", "err", err)
		return out
	}
	for _, r := range recs {
		out = append(out, call.LiveCall{ID: r.ID, Account: r.Account, Number: r.Number, Caller: r.Caller, Start: r.Start, Node: r.Node})
	}
	slices.SortStableFunc(out, func(a, b call.LiveCall) int { return a.Start.Compare(b.Start) })
	return out
}

// orbits are the park orbits the call engine shares with the other nodes
// on PostgreSQL; nil on SQLite, where a node is alone.
func (c *cluster) orbits() call.Orbits {
	if !c.st.Shared() {
		return nil
	}
	return orbits{st: c.st, node: c.self.ID}
}

// orbits adapts the store's park orbits to the call engine's, as one node.
type orbits struct {
	st   *store.Store
	node string
}

func (o orbits) ClaimOrbit(ctx context.Context, account string, lo, hi int, callID string) (int, bool, error) {
	return o.st.ClaimOrbit(ctx, account, lo, hi, o.node, callID, time.Now())
}

func (o orbits) ReleaseOrbit(ctx context.Context, account string, orbit int, callID string) error {
	return o.st.ReleaseOrbit(ctx, account, orbit, callID)
}

func (o orbits) ParkedAt(ctx context.Context, account string, orbit int) (string, string, bool, error) {
	p, ok, err := o.st.ParkedCall(ctx, account, orbit, time.Now())
	return p.Node, p.SIPAddr, ok, err
}
