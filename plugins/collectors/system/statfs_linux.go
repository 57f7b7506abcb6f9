package system

import "golang.org/x/sys/unix"

// supported reports whether the collector can run here: on Linux, always.
func supported() error { return nil }

// statfs asks the kernel about the filesystem mounted at path.
func statfs(path string) (fsStat, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fsStat{}, err
	}
	size := uint64(st.Frsize)
	if size == 0 {
		size = uint64(st.Bsize)
	}
	return fsStat{total: st.Blocks * size, free: st.Bfree * size, avail: st.Bavail * size}, nil
}
