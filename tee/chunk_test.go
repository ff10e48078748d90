package tee

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

func TestPropertyScrollbackKeepsTheTail(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.IntRange(1, 5000).Draw(t, "size")
		pool := newChunkPool(1024)
		sb := newScrollback(size, pool)
		var stream []byte
		chunks := rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 1, 1024)).Draw(t, "chunks")
		for _, p := range chunks {
			c := pool.get()
			c.b = append(c.buf[:0], p...)
			sb.write(c)
			pool.release(c)
			stream = append(stream, p...)
			k := rapid.IntRange(0, 2*size).Draw(t, "k")
			want := stream[max(0, len(stream)-min(k, size)):]
			if got := sb.last(k); !bytes.Equal(got, want) {
				t.Fatalf("last(%d) = %d bytes, want %d", k, len(got), len(want))
			}
			if sb.bytes > size+1024+scratchSize {
				t.Fatalf("scrollback holds %d bytes for size %d", sb.bytes, size)
			}
		}
		sb.reset()
	})
}

func TestPropertySpanQueueIsFIFO(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var q spanQueue
		var model []int
		for _, op := range rapid.SliceOf(rapid.IntRange(0, 2)).Draw(t, "ops") {
			switch {
			case op == 0:
				q.push(span{skip: len(model) + 1000})
				model = append(model, len(model)+1000)
			case op == 1 && len(model) > 0:
				if got := q.pop().skip; got != model[0] {
					t.Fatalf("pop %d, want %d", got, model[0])
				}
				model = model[1:]
			case op == 2:
				front := []span{{skip: -1}, {skip: -2}}
				q.pushFront(front)
				model = append([]int{-1, -2}, model...)
			}
			if q.len() != len(model) {
				t.Fatalf("len %d, want %d", q.len(), len(model))
			}
			for i, v := range model {
				if q.at(i).skip != v {
					t.Fatalf("at(%d) = %d, want %d", i, q.at(i).skip, v)
				}
			}
		}
	})
}
