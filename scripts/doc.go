// Package scripts holds no code: its tests run the shell scripts beside it
// (setup.sh, test.sh) with the commands they call shimmed on PATH.
package scripts
