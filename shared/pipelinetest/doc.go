// Package pipelinetest holds end-to-end tests of the outbound pipeline:
// real SCIM requests over HTTP to the local runner (shared/allinone: SCIM
// API, bolt store, disk queue, workers, sweeper) whose target is the
// Absorb connector talking to the Absorb simulator (absorbsim). The tests
// assert what ends up in the simulator: learners, their fields, their
// group field and their enrollments, and that no learner is ever
// duplicated.
package pipelinetest
