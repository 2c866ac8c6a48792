package template_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// lambdaZipLimit is Lambda's limit for a directly uploaded zip; an
// uncompressed binary under it is certainly deployable.
const lambdaZipLimit = 50 << 20

// TestCrossCompile builds every function as `sam build` and
// infra/build/build.sh do, for the template's runtime (provided.al2023,
// arm64), and checks the result is a static linux/arm64 executable.
func TestCrossCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the linux/arm64 builds")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go tool on PATH: %v", err)
	}
	// One go build for all: the dependencies compile once for arm64.
	out := t.TempDir()
	dirs := functionDirs(t)
	args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags", "-s -w", "-o", out + string(filepath.Separator)}
	for _, dir := range dirs {
		args = append(args, "./functions/"+dir)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build for linux/arm64: %v\n%s", err, b)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			bin := filepath.Join(out, dir) // sam build renames it bootstrap
			fi, err := os.Stat(bin)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("functions/%s: %.1f MiB (linux/arm64, stripped)", dir, float64(fi.Size())/(1<<20))
			if fi.Size() > lambdaZipLimit {
				t.Errorf("binary is %d bytes, above Lambda's %d-byte zip limit", fi.Size(), lambdaZipLimit)
			}
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("not an ELF executable: %v", err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
				t.Errorf("machine %v type %v, want an arm64 executable", f.Machine, f.Type)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Error("dynamically linked (PT_INTERP): build with CGO_ENABLED=0")
				}
			}
		})
	}
}
