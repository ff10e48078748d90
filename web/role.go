package web

import "chartee/chardev"

// canType: operate and admin type, send breaks and take the write lock;
// view only watches. The engine enforces the same on the leg (its
// identity's role), so the page's read-only mode is a courtesy, not the
// guard.
func canType(r chardev.Role) bool { return r >= chardev.RoleOperate }
