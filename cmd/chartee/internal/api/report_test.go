package api

import (
	"reflect"
	"testing"
	"time"

	"chartee/cmd/chartee/internal/daemon"
)

// TestReloadReportCopiesEveryField fills every field of the daemon's report
// and checks the wire report carries each one: a field added to one side
// only fails here.
func TestReloadReportCopiesEveryField(t *testing.T) {
	var in daemon.ReloadReport
	v := reflect.ValueOf(&in).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{v.Type().Field(i).Name}))
		case reflect.Int64:
			f.SetInt(int64(time.Second))
		default:
			t.Fatalf("field %s: kind %s not filled by this test", v.Type().Field(i).Name, f.Kind())
		}
	}
	out := reflect.ValueOf(reloadReport(in))
	if out.NumField() != v.NumField() {
		t.Fatalf("wire report has %d fields, daemon's %d", out.NumField(), v.NumField())
	}
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		got := out.FieldByName(name)
		if !got.IsValid() || !reflect.DeepEqual(got.Interface(), v.Field(i).Interface()) {
			t.Errorf("field %s: wire %v, daemon %v", name, got, v.Field(i))
		}
	}
}
