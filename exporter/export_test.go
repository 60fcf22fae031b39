package exporter

// NIROptions.rawThreshold is reachable from the tests in package exporter_test.
func RawThresholdForTests() NIROptions { return NIROptions{rawThreshold: true} }
