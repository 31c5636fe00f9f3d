// Package scaletest holds the conformance suite for scale.Scheduler
// implementations and Fake, an in-memory Scheduler that passes it.
//
// A scheduler's own tests run the suite with a Harness that says how to open
// the scheduler, which image to run and which commands in that image behave
// as the suite's Programs:
//
//	func TestConformance(t *testing.T) {
//		scaletest.Run(t, scaletest.Harness{
//			New:      func(t *testing.T) scale.Scheduler { return open(t, t.TempDir()) },
//			Image:    image,
//			Programs: programs,
//		})
//	}
//
// Fake is for the tests of what drives a scheduler (release managers,
// platforms, routers): its processes are Go functions chosen by command, so
// a test scripts exit codes, output, health and timing without containers.
package scaletest
