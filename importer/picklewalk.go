package importer

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// pickleEnd walks one pickle stream opcode by opcode, without building
// anything, and returns the offset just past its STOP. It refuses unknown
// opcodes and any length prefix larger than the bytes that follow: gopickle
// allocates a declared length before reading it, so a damaged length could
// otherwise ask for gigabytes.
func pickleEnd(b []byte, start int) (int, error) {
	i := start
	need := func(n uint64) error {
		if n > uint64(len(b)-i) {
			return fmt.Errorf("pickle truncated or damaged at byte %d", i)
		}
		return nil
	}
	line := func() error {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return fmt.Errorf("pickle truncated at byte %d", i)
		}
		i += j + 1
		return nil
	}
	for i < len(b) {
		op := b[i]
		i++
		var fixed int
		var lenBytes int
		switch op {
		case '.': // STOP
			return i, nil
		case '(', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
		case 'K', 'h', 'q', 0x80, 0x82:
			fixed = 1
		case 'M', 0x83:
			fixed = 2
		case 'J', 'j', 'r', 0x84:
			fixed = 4
		case 'G':
			fixed = 8
		case 0x95: // FRAME: an 8-byte frame length, then the framed opcodes
			if err := need(8); err != nil {
				return 0, err
			}
			if err := need(binary.LittleEndian.Uint64(b[i:]) + 8); err != nil {
				return 0, err
			}
			i += 8
		case 'I', 'L', 'S', 'V', 'F', 'P', 'g', 'p':
			if err := line(); err != nil {
				return 0, err
			}
		case 'c', 'i':
			if err := line(); err != nil {
				return 0, err
			}
			if err := line(); err != nil {
				return 0, err
			}
		case 'U', 0x8c, 'C', 0x8a:
			lenBytes = 1
		case 'T', 'X', 'B', 0x8b:
			lenBytes = 4
		case 0x8d, 0x8e, 0x96:
			lenBytes = 8
		default:
			return 0, fmt.Errorf("unknown pickle opcode %#x at byte %d", op, i-1)
		}
		if fixed > 0 {
			if err := need(uint64(fixed)); err != nil {
				return 0, err
			}
			i += fixed
		}
		if lenBytes > 0 {
			if err := need(uint64(lenBytes)); err != nil {
				return 0, err
			}
			var n uint64
			switch lenBytes {
			case 1:
				n = uint64(b[i])
			case 4:
				n = uint64(binary.LittleEndian.Uint32(b[i:]))
			case 8:
				n = binary.LittleEndian.Uint64(b[i:])
			}
			i += lenBytes
			if err := need(n); err != nil {
				return 0, err
			}
			i += int(n)
		}
	}
	return 0, fmt.Errorf("pickle ends without STOP")
}
