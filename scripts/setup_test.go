package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// shim writes an executable bash script name into dir.
func shim(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// recorders shims the system package managers (and sudo) into dir: each
// appends its command line to log and does nothing else.
func recorders(t *testing.T, dir, log string) {
	for _, name := range []string{"apt-get", "apt", "sudo", "aptitude", "dpkg"} {
		shim(t, dir, name, `echo "`+name+` $*" >> `+log)
	}
}

func calls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestSetupOnACompleteMachine runs scripts/setup.sh as the README's
// commands do on this machine, which (in CI, after scripts/test.sh's own
// call of it) has everything: it must call no package manager and no sudo.
func TestSetupOnACompleteMachine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("setup.sh is for Debian")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command("bash", filepath.Join(root, "scripts", "setup.sh"), "check")
	if out, err := check.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("this machine lacks what the tests need (CI=true: scripts/setup.sh ran before the tests): %v\n%s", err, out)
		}
		t.Skipf("this machine lacks what the tests need (run scripts/setup.sh): %s", out)
	}
	bin := t.TempDir()
	log := filepath.Join(t.TempDir(), "calls")
	recorders(t, bin, log)
	// npm is no system package manager, but it must not fetch here either
	shim(t, bin, "npm", `echo "npm $*" >> `+log+`.npm`)
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "setup.sh"))
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	if c := calls(t, log); c != nil {
		t.Fatalf("setup.sh on a machine that has everything called %q\n%s", c, out)
	}
}

// machine is a made-up Debian machine for setup.sh: which capabilities
// it has and which packages its database lists as installed.
type machine struct {
	python   bool     // /usr/bin/python3 imports every module
	commands []string // commands on PATH among node, npm, mpirun, mpiexec, mpicc, nvcc
	loader   []string // libraries in the loader's cache
	dataset  bool     // Fashion-MNIST's folder exists
	dpkg     []string // installed packages
	root     bool     // the user is root
}

// run runs a copy of setup.sh on m with only shims on PATH and returns
// the package manager's and sudo's command lines and the script's output.
func (m machine) run(t *testing.T) ([]string, string) {
	t.Helper()
	src, err := os.ReadFile("setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin, log := filepath.Join(dir, "bin"), filepath.Join(dir, "calls")
	for _, d := range []string{bin, filepath.Join(dir, "scripts", "ort", "node_modules", "onnxruntime-node"), filepath.Join(dir, "fmnist")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fashion := filepath.Join(dir, "fmnist")
	if !m.dataset {
		fashion = filepath.Join(dir, "absent")
	}
	status := "1"
	if m.python {
		status = "0"
	}
	shim(t, bin, "python3", "exit "+status)
	// the script's two fixed paths, pointed into the made-up machine
	script := string(src)
	for old, repl := range map[string]string{
		"python=/usr/bin/python3\n":                   "python=" + filepath.Join(bin, "python3") + "\n",
		"fashion=/usr/share/datasets/fashion-mnist\n": "fashion=" + fashion + "\n",
	} {
		if !strings.Contains(script, old) {
			t.Fatalf("setup.sh no longer sets %q", old)
		}
		script = strings.Replace(script, old, repl, 1)
	}
	if err := os.WriteFile(filepath.Join(dir, "scripts", "setup.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	recorders(t, bin, log)
	for _, c := range m.commands {
		shim(t, bin, c, "exit 0")
	}
	// ldconfig's cache as long as a real one (thousands of lines, more
	// than a pipe holds), the libraries near its top: a reader that stops
	// at the first match kills ldconfig with SIGPIPE
	var cache strings.Builder
	cache.WriteString("5000 libs found in cache `/etc/ld.so.cache'\n")
	for _, l := range m.loader {
		cache.WriteString("\t" + l + " (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/" + l + "\n")
	}
	for i := 0; i < 5000; i++ {
		cache.WriteString("\tlibfiller" + strings.Repeat("x", i%40) + ".so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libfiller.so.1\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "cache"), []byte(cache.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	shim(t, bin, "ldconfig", `cat `+filepath.Join(dir, "cache"))
	// dpkg-query -W -f=FORMAT PATTERN...: one line per known package
	// matching a pattern, exit status 1 when a pattern matches nothing
	db := strings.Join(m.dpkg, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "db"), []byte(db), 0o644); err != nil {
		t.Fatal(err)
	}
	shim(t, bin, "dpkg-query", `rc=0; shift 2
for pat in "$@"; do
  found=0
  while read -r p; do
    if [ -n "$p" ] && [[ $p == $pat ]]; then echo "ii  $p"; found=1; fi
  done < `+filepath.Join(dir, "db")+`
  [ $found = 1 ] || { echo "dpkg-query: no packages found matching $pat" >&2; rc=1; }
done
exit $rc`)
	uid := "1000"
	if m.root {
		uid = "0"
	}
	shim(t, bin, "id", "echo "+uid)
	shim(t, bin, "go", "exit 0")
	for _, tool := range []string{"bash", "dirname", "cat", "grep", "tee"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "bash"), filepath.Join(dir, "scripts", "setup.sh"))
	cmd.Env = []string{"PATH=" + bin, "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	c := calls(t, log)
	if err != nil && c == nil {
		t.Fatalf("setup.sh: %v\n%s", err, out)
	}
	return c, string(out)
}

var everything = []string{"node", "npm", "mpirun", "mpicc", "nvcc"}

// TestSetupInstallsOnlyWhatIsMissing: a package is installed only when
// its capability is missing and the package database lists none of the
// packages that provide it.
func TestSetupInstallsOnlyWhatIsMissing(t *testing.T) {
	libs := []string{"libhdf5_serial.so.103", "libopenblas.so.0"}
	full := machine{python: true, commands: everything, loader: libs, dataset: true}
	if c, out := full.run(t); c != nil {
		t.Fatalf("a machine with everything: setup.sh called %q\n%s", c, out)
	}

	// mpiexec (MPICH) does what mpirun does; BLIS is an optimized BLAS
	other := full
	other.commands = []string{"node", "npm", "mpiexec", "mpicc", "nvcc"}
	other.loader = []string{"libhdf5.so.310", "libblis.so.4"}
	if c, out := other.run(t); c != nil {
		t.Fatalf("mpiexec and BLIS: setup.sh called %q\n%s", c, out)
	}

	// torch does not import, HDF5 and the BLAS are not in the loader's
	// cache, but dpkg has their packages: setup says so, installs nothing
	broken := full
	broken.python, broken.loader = false, nil
	broken.dpkg = []string{"python3-torch", "python3-onnx", "python3-h5py", "python3-numpy", "python3-torchvision",
		"libhdf5-103-1", "libopenblas0-pthread"}
	c, out := broken.run(t)
	if c != nil {
		t.Fatalf("packages installed but not working: setup.sh called %q\n%s", c, out)
	}
	if !strings.Contains(out, "python3-torch installed") || !strings.Contains(out, "libopenblas0") {
		t.Errorf("setup.sh does not say which installed packages do not work:\n%s", out)
	}

	// missing on both counts: one update, one install of exactly those,
	// through sudo for a user who is not root
	bare := machine{commands: []string{"npm", "nvcc"}, loader: []string{"libhdf5_serial.so.103"}, dataset: true,
		dpkg: []string{"python3-numpy"}}
	c, out = bare.run(t)
	want := []string{"sudo apt-get update -qq",
		"sudo apt-get install -y -qq python3-torch python3-onnx python3-h5py python3-torchvision nodejs libopenblas0-pthread openmpi-bin libopenmpi-dev"}
	if strings.Join(c, "\n") != strings.Join(want, "\n") {
		t.Fatalf("setup.sh called\n%s\nwant\n%s\n%s", strings.Join(c, "\n"), strings.Join(want, "\n"), out)
	}
}
