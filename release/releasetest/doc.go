// Package releasetest holds the conformance suite every release.Store
// implementation must pass (Run), and MemStore, the in-memory reference
// implementation that passes it.
//
// A third-party store proves itself with:
//
//	func TestConformance(t *testing.T) {
//		releasetest.Run(t, releasetest.Harness{
//			New: func(t *testing.T) release.Store { return openMyStore(t) },
//		})
//	}
package releasetest
