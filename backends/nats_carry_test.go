package backends

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"pgregory.net/rapid"

	"chartee/chardev"
)

// TestNATSCarryContinuesDedup: a nats device carried by an upgrade keeps
// its session and offset in the new process, and a message whose ack the
// cut left unanswered is published again with the same bytes and
// Nats-Msg-Id: the stream keeps it once, and the stream a consumer reads
// has every byte once, in order, under one session.
func TestNATSCarryContinuesDedup(t *testing.T) {
	srv := natsTestServer(t, func(o *server.Options) { o.JetStream = true })
	nc := natsTestClient(t, srv.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsTestTimeout)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CONSOLES", Subjects: []string{"chartee.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	spec := natsTestSpec(srv.ClientURL(), "chartee.up.tty")
	spec.JetStream = &NATSJetStream{Stream: "CONSOLES"}
	old := natsTestOpen(t, spec)
	for _, p := range []string{"one\n", "two\n"} {
		if _, err := old.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Freeze(); err != nil {
		t.Fatal(err)
	}
	c, err := old.Carry()
	if err != nil {
		t.Fatal(err)
	}
	var st natsCarried
	json.Unmarshal(c.State, &st)
	if st.Session != old.Session() || st.Offset != 8 {
		t.Fatalf("carried %+v", st)
	}
	// As if the cut came while "two\n" waited for its ack (stored, the
	// ack lost): the new process owes it and publishes it again.
	st.Offset, st.Pending = 4, 4
	c.State, _ = json.Marshal(st)
	dev, err := natsInherit(spec, c)
	if err != nil {
		t.Fatal(err)
	}
	nd := dev.(*NATSConn)
	defer nd.Close()
	if nd.Session() != old.Session() {
		t.Fatalf("session %q after the upgrade, want %q", nd.Session(), old.Session())
	}
	if n, err := nd.Write([]byte("two\nthree\n")); err != nil || n != 10 {
		t.Fatalf("write after the upgrade: %d, %v", n, err)
	}
	got, msgs := natsReadStream(t, js, "CONSOLES", "chartee.up.tty.out", 3)
	if string(got) != "one\ntwo\nthree\n" {
		t.Fatalf("stream holds %q", got)
	}
	natsCheckHeaders(t, msgs, old.Session(), "appliance-1")
	s, _ := js.Stream(ctx, "CONSOLES")
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 3 {
		t.Fatalf("stream has %d messages (%v), want 3: the repeated one deduplicated", info.State.Msgs, err)
	}
}

// TestNATSFreezeWriteEndsAWait: a Write waiting for the servers returns
// at FreezeWrite with chardev.ErrFrozen and the bytes stored before it,
// so the rest is carried; Freeze ends a Read.
func TestNATSFreezeWriteEndsAWait(t *testing.T) {
	srv := natsTestServer(t, func(o *server.Options) { o.JetStream = true })
	nc := natsTestClient(t, srv.ClientURL())
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), natsTestTimeout)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CONSOLES", Subjects: []string{"chartee.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	proxy := newNATSFreezeProxy(t, srv.Addr().String())
	spec := natsTestSpec("nats://"+proxy.addr(), "chartee.up.tty")
	spec.JetStream = &NATSJetStream{Stream: "CONSOLES", AckTimeout: chardev.Duration(200 * time.Millisecond)}
	dev := natsTestOpen(t, spec)
	natsSynced(t, dev)
	proxy.freeze()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := dev.Write([]byte("stuck\n"))
		done <- result{n, err}
	}()
	<-proxy.sawPublish
	dev.FreezeWrite()
	select {
	case r := <-done:
		if r.n != 0 || !errors.Is(r.err, chardev.ErrFrozen) {
			t.Fatalf("Write = %d, %v; want 0 and ErrFrozen", r.n, r.err)
		}
	case <-time.After(natsTestTimeout):
		t.Fatal("Write did not return at FreezeWrite")
	}
	var st natsCarried
	c, _ := dev.Carry()
	json.Unmarshal(c.State, &st)
	if st.Pending != len("stuck\n") || st.Offset != 0 {
		t.Fatalf("carried %+v, want the message in flight pending at 0", st)
	}
	dev.Freeze()
	if _, err := dev.Read(make([]byte, 8)); !errors.Is(err, chardev.ErrFrozen) {
		t.Fatalf("Read while frozen: %v", err)
	}
}

// TestNATSCarriedStateProperty: what Carry writes, parseNATSCarried reads
// back; a state without a session or with an impossible pending message
// is refused.
func TestNATSCarriedStateProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		st := natsCarried{Session: rapid.StringMatching(`[0-9a-f]{1,16}`).Draw(rt, "session"),
			Offset: rapid.Uint64().Draw(rt, "offset"), Pending: rapid.IntRange(0, natsMaxMessage).Draw(rt, "pending"),
			Input: rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(rt, "input")}
		b, _ := json.Marshal(st)
		got, err := parseNATSCarried(b)
		if err != nil || got.Session != st.Session || got.Offset != st.Offset || got.Pending != st.Pending || string(got.Input) != string(st.Input) {
			rt.Fatalf("got %+v, %v; want %+v", got, err, st)
		}
		st.Pending = natsMaxMessage + 1 + rapid.IntRange(0, 1000).Draw(rt, "over")
		b, _ = json.Marshal(st)
		if _, err := parseNATSCarried(b); err == nil {
			rt.Fatalf("pending %d accepted", st.Pending)
		}
	})
}

func FuzzParseNATSCarried(f *testing.F) {
	f.Add([]byte(`{"session":"ab12","offset":10,"pending":4,"input":"aGk="}`))
	f.Add([]byte(`{"session":"","offset":1}`))
	f.Add([]byte(`{"session":"x","pending":-1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseNATSCarried(b)
		if err == nil && (st.Session == "" || st.Pending < 0 || st.Pending > natsMaxMessage) {
			t.Fatalf("accepted %+v", st)
		}
	})
}
