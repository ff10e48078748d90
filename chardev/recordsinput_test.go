package chardev

import "testing"

type plainRec struct{}

func (plainRec) RecordInput([]byte) error { return nil }

type attrRec struct{}

func (attrRec) RecordInputFrom(InputAuthor, []byte) error { return nil }

type toggledRec struct {
	plainRec
	on bool
}

func (r toggledRec) RecordsInput() bool { return r.on }

// TestRecordsInput: a recorder records input unless it says it does not;
// a device that is no recorder never does, whatever it says.
func TestRecordsInput(t *testing.T) {
	for _, c := range []struct {
		name string
		dev  any
		want bool
	}{
		{"not a recorder", struct{}{}, false},
		{"recorder", plainRec{}, true},
		{"attributed recorder", attrRec{}, true},
		{"recorder, on", toggledRec{on: true}, true},
		{"recorder, off", toggledRec{on: false}, false},
		{"toggle without a recorder", struct{ InputRecorderToggle }{toggledRec{on: true}}, false},
	} {
		if got := RecordsInput(c.dev); got != c.want {
			t.Errorf("%s: RecordsInput %v, want %v", c.name, got, c.want)
		}
	}
}
