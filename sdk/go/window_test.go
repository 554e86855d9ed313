package weir

import (
	"fmt"
	"slices"
	"testing"
)

type count struct{ N uint64 }

func (c *count) Merge(o *count) { c.N += o.N }

func inc(c *count) { c.N++ }

const minute = 60_000

func newCounts(spec WindowSpec) *Windows[string, *count] {
	return NewWindows[string](spec, func() *count { return &count{} })
}

// brief renders closed windows as "end/min key n".
func briefClosed(closed []Closed[string, *count]) []string {
	out := []string{}
	for _, c := range closed {
		out = append(out, fmt.Sprintf("%d-%d %s %d", c.Window.StartMs, c.Window.EndMs, c.Key, c.Acc.N))
	}
	return out
}

func TestTumblingAndHoppingWindowsContainTheRow(t *testing.T) {
	hour := Tumbling(60 * minute)
	if got := hour.Assign(61 * minute); !slices.Equal(got, []Window{{60 * minute, 120 * minute}}) {
		t.Fatalf("%v", got)
	}
	if got := hour.Assign(-1); !slices.Equal(got, []Window{{-60 * minute, 0}}) {
		t.Fatalf("%v", got)
	}
	at := int64(7*minute + 30_000)
	windows := Hopping(5*minute, minute).Assign(at)
	if len(windows) != 5 || windows[0] != (Window{3 * minute, 8 * minute}) || windows[4] != (Window{7 * minute, 12 * minute}) {
		t.Fatalf("%v", windows)
	}
	if Hopping(minute, 2*minute).Validate() == nil || Tumbling(0).Validate() == nil || Session(1).Validate() != nil {
		t.Fatal("validate")
	}
}

func TestWindowsCloseWhenTheWatermarkPassesTheirEnd(t *testing.T) {
	w := newCounts(Hopping(5*minute, minute))
	w.Add("u1", 30_000, inc)
	w.Add("u1", 4*minute, inc)
	w.Add("u2", 90_000, inc)
	if got := w.Close(minute - 1); len(got) != 0 {
		t.Fatalf("%v", briefClosed(got))
	}
	if got := briefClosed(w.Close(minute)); !slices.Equal(got, []string{fmt.Sprintf("%d-%d u1 1", -4*minute, minute)}) {
		t.Fatalf("%v", got)
	}
	var got []string
	for _, c := range w.Close(5 * minute) {
		got = append(got, fmt.Sprintf("%d %s %d", c.Window.EndMs/minute, c.Key, c.Acc.N))
	}
	want := []string{"2 u1 1", "2 u2 1", "3 u1 1", "3 u2 1", "4 u1 1", "4 u2 1", "5 u1 2", "5 u2 1"}
	if !slices.Equal(got, want) {
		t.Fatalf("%v", got)
	}
	if !w.IsLate(30_000, 5*minute) || w.IsLate(4*minute, 5*minute) {
		t.Fatal("late")
	}
}

func TestALateRowThatBridgesTwoSessionsMergesThem(t *testing.T) {
	w := newCounts(Session(10_000))
	w.Add("k", 0, inc)
	w.Add("k", 18_000, inc)
	w.Add("j", 5_000, inc)
	if w.Len() != 3 {
		t.Fatalf("two sessions for k, one for j: %d", w.Len())
	}
	w.Add("k", 9_000, inc)
	if w.Len() != 2 || len(w.Close(27_999)) != 1 {
		t.Fatal("only j's session [5 s, 15 s) has ended")
	}
	if got := briefClosed(w.Close(28_000)); !slices.Equal(got, []string{"0-28000 k 3"}) {
		t.Fatalf("%v", got)
	}
}

func TestWindowStateSurvivesSnapshotAndRestore(t *testing.T) {
	w := newCounts(Tumbling(minute))
	w.Add("a", 10, inc)
	w.Add("a", 20, inc)
	restored := newCounts(Tumbling(1))
	if err := restored.Restore(must(w.Snapshot())); err != nil {
		t.Fatal(err)
	}
	restored.Add("a", 30, inc)
	if got := briefClosed(restored.Close(minute)); !slices.Equal(got, []string{"0-60000 a 3"}) {
		t.Fatalf("%v", got)
	}
	if restored.Restore([]byte("nonsense")) == nil {
		t.Fatal("garbage restored")
	}
}

func TestWindowChangesNameTheKeysAddedToAndRemoveTheKeysWhoseWindowsAllClosed(t *testing.T) {
	w := newCounts(Tumbling(minute))
	w.Add("a", 10, inc)
	w.Add("b", 20, inc)
	w.Add("b", minute+5, inc)
	restored := newCounts(w.Spec())
	if err := restored.RestoreEntries(must(w.Entries())); err != nil {
		t.Fatal(err)
	}
	if got := must(w.Changes()); len(got) != 0 {
		t.Fatalf("Entries starts tracking afresh: %v", brief(got))
	}
	w.Add("c", minute+30, inc)
	w.Close(minute) // a's only window and b's first close
	changes := must(w.Changes())
	var keys []string
	for _, e := range changes {
		keys = append(keys, string(e.Key))
	}
	if !slices.Equal(keys, []string{`"a"`, `"b"`, `"c"`}) || !changes[0].Removed || changes[1].Removed || changes[2].Removed {
		t.Fatalf("%v", brief(changes))
	}
	if got := must(w.Changes()); len(got) != 0 {
		t.Fatalf("%v", brief(got))
	}
	// The copy, given the changes the way the host merges them, equals the original.
	if err := restored.RestoreEntries(mergedLikeTheHost(must(restored.Entries()), changes)); err != nil {
		t.Fatal(err)
	}
	if got, want := brief(must(restored.Entries())), brief(must(w.Entries())); !slices.Equal(got, want) {
		t.Fatalf("restored %v, original %v", got, want)
	}
	if got := briefClosed(restored.Close(2 * minute)); !slices.Equal(got, []string{"60000-120000 b 1", "60000-120000 c 1"}) {
		t.Fatalf("%v", got)
	}
	// Reading does not mark a key changed; GetMut does.
	w.Get("b", Window{minute, 2 * minute})
	if len(must(w.Changes())) != 0 {
		t.Fatal("Get marked a change")
	}
	if acc, ok := w.GetMut("b", Window{minute, 2 * minute}); !ok || acc.N != 1 || len(must(w.Changes())) != 1 {
		t.Fatal("GetMut")
	}
}
