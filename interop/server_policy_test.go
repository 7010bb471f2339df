package interop

// The policy of node-serve.mjs's policy-host backend, seen through gVisor's
// client: every class is allowed on `/`, /policy-denied is denied (EACCES)
// and /policy-ro is read-only (EROFS). The rest of the suite proves that the
// allow rule lets every scenario through (and that the policy refused
// nothing: the report's deniedEvents must be 0); this test proves that the
// rules are really enforced on the same server.

import (
	"testing"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/abi/linux"
)

func TestServerPolicy(t *testing.T) {
	if testBackend(t) != backendPolicyHost {
		t.Skipf("only for %s=%s: the policy is that backend's configuration", backendEnv, backendPolicyHost)
	}
	e := startServer(t, serverOpts{})
	e.mkdirHost("policy-denied")
	e.writeHost("policy-denied/secret", "secret")
	e.mkdirHost("policy-ro/sub")
	e.writeHost("policy-ro/f", "read-only")
	e.writeHost("outside", "free")
	before := hostStat(t, e.path("policy-ro", "f"))

	t.Run("denied-EACCES", func(t *testing.T) {
		_, _, err := e.root.WalkMultiple(e.ctx, []string{"policy-denied"})
		wantErrno(t, "Walk policy-denied", err, unix.EACCES)
		_, err = e.root.MkdirAt(e.ctx, "policy-denied-not", 0o755, 0, 0)
		mustOK(t, "MkdirAt of a sibling whose name only starts like the rule's", err)
		e.wantDenied++
	})
	t.Run("read-only-EROFS", func(t *testing.T) {
		ro := e.walk("policy-ro")
		defer e.closeFD(ro)
		f := e.walk("policy-ro", "f")
		defer e.closeFD(f)
		// Reads work.
		of, _ := e.open(f, unix.O_RDONLY)
		defer e.closeFD(of)
		buf := make([]byte, 16)
		n, err := of.Read(e.ctx, buf, 0)
		if err != nil || string(buf[:n]) != "read-only" {
			t.Errorf("PRead in the read-only subtree = %q, %v", buf[:n], err)
		}
		// Every mutation is refused before it reaches the host.
		_, _, err = f.OpenAt(e.ctx, unix.O_WRONLY)
		wantErrno(t, "OpenAt(O_WRONLY)", err, unix.EROFS)
		_, _, _, err = ro.OpenCreateAt(e.ctx, "new", unix.O_RDWR, 0o644, 0, 0)
		wantErrno(t, "OpenCreateAt", err, unix.EROFS)
		_, err = ro.MkdirAt(e.ctx, "newdir", 0o755, 0, 0)
		wantErrno(t, "MkdirAt", err, unix.EROFS)
		wantErrno(t, "UnlinkAt", ro.UnlinkAt(e.ctx, "f", 0), unix.EROFS)
		wantErrno(t, "RenameAt out of the subtree", ro.RenameAt(e.ctx, "f", e.root.ID(), "stolen", 0), unix.EROFS)
		wantErrno(t, "UnlinkAt of the subtree itself", e.root.UnlinkAt(e.ctx, "policy-ro", unix.AT_REMOVEDIR), unix.EROFS)
		// SetStat reports a refusal in its failure mask, as for any
		// attribute that cannot be applied.
		mask, ferr, err := f.SetStat(e.ctx, &linux.Statx{Mask: unix.STATX_MODE, Mode: 0o777})
		mustOK(t, "SetStat(mode)", err)
		if mask != unix.STATX_MODE || ferr != unix.EROFS {
			t.Errorf("SetStat(mode) in the read-only subtree: failure mask %#x errno %v, want %#x EROFS", mask, ferr, unix.STATX_MODE)
		}
		e.wantDenied += 7
		after := hostStat(t, e.path("policy-ro", "f"))
		if after.Mode != before.Mode || after.Size != before.Size || readAllHost(t, e.path("policy-ro", "f")) != "read-only" {
			t.Errorf("the read-only file changed on the host: mode %#o size %d", after.Mode, after.Size)
		}
		for _, name := range []string{"policy-ro/new", "policy-ro/newdir", "stolen"} {
			hostMissing(t, e.path(name))
		}
	})
	t.Run("outside-allowed", func(t *testing.T) {
		f := e.walk("outside")
		defer e.closeFD(f)
		of, _ := e.open(f, unix.O_RDWR)
		defer e.closeFD(of)
		_, err := of.Write(e.ctx, []byte("FREE"), 0)
		mustOK(t, "PWrite outside the protected subtrees", err)
		if got := readAllHost(t, e.path("outside")); got != "FREE" {
			t.Errorf("host content %q, want FREE", got)
		}
	})
}
