// Package contract holds proxykit's library contract as a test
// (contract_test.go): every exported function and method of the packages
// it covers, called with nil, zero, negative and huge arguments and on
// zero values, returns an error or works, and never panics; a
// completeness check over the packages' sources fails when an exported
// function or method has no entry, so that the test grows with the API.
// The package has no code of its own.
package contract
