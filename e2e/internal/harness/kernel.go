package harness

import (
	"archive/tar"
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// KernelMetaPackage is the Debian meta-package whose dependency names the
// current kernel image package.
const KernelMetaPackage = "linux-image-amd64"

// CacheDir is where extracted kernels are kept between runs:
// $CHARTEE_E2E_CACHE, else the user cache dir ($XDG_CACHE_HOME or
// ~/.cache) plus "chartee-e2e".
func CacheDir() (string, error) {
	if d := os.Getenv("CHARTEE_E2E_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("e2e: no cache dir (set CHARTEE_E2E_CACHE): %w", err)
	}
	return filepath.Join(d, "chartee-e2e"), nil
}

var kernelOnce struct {
	sync.Mutex
	path string
}

// Kernel returns the path of a Debian x86-64 kernel image (bzImage).
// $CHARTEE_E2E_KERNEL names one directly. Otherwise the package that
// linux-image-amd64 depends on is fetched with apt-get download and its
// boot/vmlinuz-* unpacked (dpkg-deb --fsys-tarfile, the same archive dpkg -x
// unpacks, but only that one file) into CacheDir()/PACKAGE_VERSION/, so a
// second run costs nothing; the kernel is never installed.
func Kernel(t testing.TB) string {
	t.Helper()
	Begin(t)
	if p := os.Getenv("CHARTEE_E2E_KERNEL"); p != "" {
		return p
	}
	kernelOnce.Lock()
	defer kernelOnce.Unlock()
	if kernelOnce.path != "" {
		return kernelOnce.path
	}
	RequireProgram(t, "apt-cache", "apt")
	RequireProgram(t, "apt-get", "apt")
	RequireProgram(t, "dpkg-deb", "dpkg")
	path, err := fetchKernel()
	if err != nil {
		t.Fatal(err)
	}
	kernelOnce.path = path
	return path
}

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[^\s]+)`)

func fetchKernel() (string, error) {
	out, err := exec.Command("apt-cache", "depends", KernelMetaPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("e2e: kernel: apt-cache depends %s: %v: %s (run apt-get update)", KernelMetaPackage, err, out)
	}
	m := dependsRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("e2e: kernel: apt-cache depends %s names no linux-image package: %s", KernelMetaPackage, out)
	}
	pkg := string(m[1])
	ver, err := exec.Command("apt-cache", "policy", pkg).Output()
	if err != nil {
		return "", fmt.Errorf("e2e: kernel: apt-cache policy %s: %v", pkg, err)
	}
	version := "unknown"
	if vm := regexp.MustCompile(`Candidate:\s*(\S+)`).FindSubmatch(ver); vm != nil {
		version = string(vm[1])
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, pkg+"_"+strings.ReplaceAll(version, ":", "%3a"))
	if p, err := findVmlinuz(dir); err == nil {
		return p, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("e2e: kernel: %w", err)
	}
	tmp, err := os.MkdirTemp(cache, "fetch-")
	if err != nil {
		return "", fmt.Errorf("e2e: kernel: %w", err)
	}
	defer os.RemoveAll(tmp)
	dl := exec.Command("apt-get", "download", pkg+"="+version)
	dl.Dir = tmp
	if out, err := dl.CombinedOutput(); err != nil {
		return "", fmt.Errorf("e2e: kernel: apt-get download %s=%s: %v: %s", pkg, version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("e2e: kernel: apt-get download %s left %d .deb files", pkg, len(debs))
	}
	stage := filepath.Join(tmp, "root")
	if err := extractBoot(debs[0], stage); err != nil {
		return "", err
	}
	if _, err := findVmlinuz(stage); err != nil {
		return "", err
	}
	os.RemoveAll(dir)
	if err := os.Rename(stage, dir); err != nil {
		return "", fmt.Errorf("e2e: kernel: %w", err)
	}
	return findVmlinuz(dir)
}

// extractBoot unpacks ./boot/vmlinuz-* of a .deb into dir/boot.
func extractBoot(deb, dir string) error {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("e2e: kernel: dpkg-deb: %w", err)
	}
	found := false
	tr := tar.NewReader(bufio.NewReader(out))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("e2e: kernel: reading %s: %w", deb, err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "boot/vmlinuz-") {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, "boot"), 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("e2e: kernel: unpacking %s: %w", name, err)
		}
		found = true
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("e2e: kernel: dpkg-deb --fsys-tarfile %s: %v: %s", deb, err, stderr.String())
	}
	if !found {
		return fmt.Errorf("e2e: kernel: %s has no boot/vmlinuz-*", deb)
	}
	return nil
}

func findVmlinuz(dir string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(m) == 0 {
		return "", fmt.Errorf("e2e: kernel: no boot/vmlinuz-* in %s", dir)
	}
	return m[0], nil
}

// StaticBusybox returns the path of a statically linked busybox (from
// busybox-static), the only program the VM's initramfs needs.
func StaticBusybox(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p
		}
	}
	t.Fatalf("e2e: no statically linked busybox in /bin or /usr/bin: install the Debian package %q "+
		"(apt-get install -y busybox-static), or set %s=skip to skip the end-to-end tests locally",
		"busybox-static", SkipEnv)
	return ""
}
