//go:build tools

// The real go-libp2p-daemon, pinned by go.mod and go.sum: build.sh builds its
// p2pd command, the reference cp2pd is compared with. Nothing of ours is here.
package tools

import _ "github.com/libp2p/go-libp2p-daemon/p2pd"
