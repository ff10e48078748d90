package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// VMReadyMarker is printed by the initramfs's /init once the VM's
// filesystems are mounted, just before the first shell starts.
const VMReadyMarker = "CHARTEE-VM-READY"

// VMPrompt is the shell prompt of the VM's console shell.
const VMPrompt = "vm# "

// vmInit is the initramfs's /init: busybox applets, the pseudo
// filesystems, a ready marker, then a shell on the console forever (a new
// one if it exits). cttyhack makes the console the shell's controlling
// tty, so job control and ^C work as on a real serial console.
const vmInit = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
export PS1='` + VMPrompt + `' HOME=/root PATH=/bin:/sbin
echo ` + VMReadyMarker + `
while :; do setsid cttyhack sh; done
`

// BuildInitramfs writes an uncompressed newc initramfs holding busybox and
// the /init above to dir/initramfs.cpio and returns its path.
func BuildInitramfs(t testing.TB, dir string) string {
	t.Helper()
	bb, err := os.ReadFile(StaticBusybox(t))
	if err != nil {
		t.Fatal(err)
	}
	entries := []CpioEntry{
		{Name: "bin", Mode: ModeDir | 0o755},
		{Name: "sbin", Mode: ModeDir | 0o755},
		{Name: "dev", Mode: ModeDir | 0o755},
		// The kernel opens /dev/console for init before anything can mount
		// devtmpfs; the archive creates the node, so no host privilege is needed.
		{Name: "dev/console", Mode: ModeChar | 0o600, Major: 5, Minor: 1},
		{Name: "proc", Mode: ModeDir | 0o755},
		{Name: "sys", Mode: ModeDir | 0o755},
		{Name: "tmp", Mode: ModeDir | 0o1777},
		{Name: "root", Mode: ModeDir | 0o700},
		{Name: "bin/busybox", Mode: ModeRegular | 0o755, Data: bb},
		{Name: "bin/sh", Mode: ModeSymlink | 0o777, Data: []byte("busybox")},
		{Name: "init", Mode: ModeRegular | 0o755, Data: []byte(vmInit)},
	}
	var buf bytes.Buffer
	if err := WriteCpio(&buf, entries); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "initramfs.cpio")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// VM is a QEMU guest whose serial console is a unix socket QEMU listens on
// (-chardev socket,server=on,wait=off): whoever connects gets the console.
type VM struct {
	Socket string // the console's unix socket (StartVM)
	TCP    string // the console's telnet address (StartVMTelnet)
	QMP    string // QEMU's machine protocol socket (Resume uses it)
	Proc   *Proc
}

// StartVM boots the Debian kernel with a busybox initramfs under QEMU's TCG
// (no KVM needed) with its console on ttyS0, a unix socket in dir. QEMU
// runs until the test ends. It returns once the socket exists; the boot log
// goes to whoever connects, and is lost until then (wait=off). With paused
// the guest CPU does not start (-S) until Resume, so a test can connect
// everything first and see the boot log from its first line.
func StartVM(t testing.TB, dir string, paused bool) *VM {
	t.Helper()
	sock := filepath.Join(dir, "console.sock")
	vm := startVM(t, dir, paused, "socket,id=c0,path="+sock+",server=on,wait=off", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	vm.Socket = sock
	return vm
}

// StartVMTelnet is StartVM with the console on a TCP socket in QEMU's
// telnet mode (-chardev socket,...,telnet=on) at a loopback address: QEMU
// speaks telnet to whoever connects and turns an IAC BREAK into a break on
// the guest's serial port, which Linux takes as the magic SysRq prefix.
func StartVMTelnet(t testing.TB, dir string, paused bool) *VM {
	t.Helper()
	addr := FreeAddr(t)
	host, port, err := splitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	vm := startVM(t, dir, paused, "socket,id=c0,host="+host+",port="+port+",server=on,wait=off,telnet=on", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
	vm.TCP = addr
	return vm
}

// startVM runs QEMU with the serial console on chardev (id c0) and waits
// until ready says the console is there and the QMP socket exists.
func startVM(t testing.TB, dir string, paused bool, chardev string, ready func() bool) *VM {
	t.Helper()
	qemu := RequireProgram(t, "qemu-system-x86_64", "qemu-system-x86")
	kernel := Kernel(t)
	initrd := BuildInitramfs(t, dir)
	qmp := filepath.Join(dir, "qmp.sock")
	args := []string{
		"-M", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "256",
		"-nographic", "-no-reboot", "-display", "none", "-monitor", "none",
		"-nodefaults", "-no-user-config",
		"-kernel", kernel, "-initrd", initrd,
		// panic=-1 plus -no-reboot: a guest panic ends QEMU instead of hanging.
		"-append", "console=ttyS0,115200 panic=-1 ignore_loglevel rdinit=/init",
		"-chardev", chardev,
		"-serial", "chardev:c0",
		"-qmp", "unix:" + qmp + ",server=on,wait=off",
	}
	if paused {
		args = append(args, "-S")
	}
	p := Start(t, "qemu", qemu, args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(qmp)
		if err == nil && ready() {
			break
		}
		if p.Exited() {
			t.Fatalf("e2e: qemu exited before its console was ready:\n%s", p.Output())
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: qemu's console was not ready within 30s:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &VM{QMP: qmp, Proc: p}
}

// Resume starts the guest CPU of a VM started paused, over QMP: read the
// greeting, negotiate capabilities, then "cont".
func (vm *VM) Resume(t testing.TB) {
	t.Helper()
	conn, err := net.DialTimeout("unix", vm.QMP, 10*time.Second)
	if err != nil {
		t.Fatalf("e2e: qmp: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	dec := json.NewDecoder(conn)
	var greeting map[string]any
	if err := dec.Decode(&greeting); err != nil {
		t.Fatalf("e2e: qmp greeting: %v", err)
	}
	for _, cmd := range []string{"qmp_capabilities", "cont"} {
		if _, err := fmt.Fprintf(conn, "{\"execute\": %q}\n", cmd); err != nil {
			t.Fatalf("e2e: qmp %s: %v", cmd, err)
		}
		for {
			var reply map[string]any
			if err := dec.Decode(&reply); err != nil {
				t.Fatalf("e2e: qmp %s: %v", cmd, err)
			}
			if e, ok := reply["error"]; ok {
				t.Fatalf("e2e: qmp %s: %v", cmd, e)
			}
			if _, ok := reply["return"]; ok {
				break
			}
			// An asynchronous event (RESUME, ...): keep reading.
		}
	}
}
