package smb3crypt

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/nwhealth/nwhealth/pkg/smbrpc"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCCMVectors checks CCM against RFC 3610's packet vector #1 and the
// three examples of NIST SP 800-38C appendix C, each sealed and opened, and
// against AES-256-CCM with SMB's sizes (11-byte nonce, 16-byte tag) as
// OpenSSL computes it (no published AES-256 vector has those sizes).
func TestCCMVectors(t *testing.T) {
	for _, c := range []struct {
		name               string
		key, nonce, ad, pt string
		tag                int
		ct                 string
	}{
		{"RFC 3610 #1", "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf", "00000003020100a0a1a2a3a4a5", "0001020304050607",
			"08090a0b0c0d0e0f101112131415161718191a1b1c1d1e", 8,
			"588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0"},
		{"SP 800-38C C.1", "404142434445464748494a4b4c4d4e4f", "10111213141516", "0001020304050607",
			"20212223", 4, "7162015b4dac255d"},
		{"SP 800-38C C.2", "404142434445464748494a4b4c4d4e4f", "1011121314151617", "000102030405060708090a0b0c0d0e0f",
			"202122232425262728292a2b2c2d2e2f", 6, "d2a1f0e051ea5f62081a7792073d593d1fc64fbfaccd"},
		{"SP 800-38C C.3", "404142434445464748494a4b4c4d4e4f", "101112131415161718191a1b", "000102030405060708090a0b0c0d0e0f10111213",
			"202122232425262728292a2b2c2d2e2f3031323334353637", 8,
			"e3b201a9f5b71a7a9b1ceaeccd97e70b6176aad9a4428aa5484392fbc1b09951"},
		{"AES-256 SMB sizes (OpenSSL)", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "a0a1a2a3a4a5a6a7a8a9aa",
			"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f", hex.EncodeToString([]byte("Smb3 encryption testing")), 16,
			"cbcc21bcd1379a2d9a8245865f8adac9bea92dadf05ff5997ba2729335572fb4997d06514f6129"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := aes.NewCipher(unhex(t, c.key))
			if err != nil {
				t.Fatal(err)
			}
			nonce := unhex(t, c.nonce)
			a, err := NewCCM(b, len(nonce), c.tag)
			if err != nil {
				t.Fatal(err)
			}
			ad, pt, ct := unhex(t, c.ad), unhex(t, c.pt), unhex(t, c.ct)
			if got := a.Seal(nil, nonce, pt, ad); !bytes.Equal(got, ct) {
				t.Fatalf("seal % x\nwant % x", got, ct)
			}
			got, err := a.Open(nil, nonce, ct, ad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("open % x %v", got, err)
			}
			for _, i := range []int{0, len(ct) - 1} {
				bad := bytes.Clone(ct)
				bad[i] ^= 1
				if _, err := a.Open(nil, nonce, bad, ad); !errors.Is(err, ErrOpen) {
					t.Fatalf("byte %d changed: %v", i, err)
				}
			}
			if _, err := a.Open(nil, nonce, ct, append(bytes.Clone(ad), 0)); !errors.Is(err, ErrOpen) {
				t.Fatalf("longer additional data: %v", err)
			}
		})
	}
}

// Microsoft's published SMB 3 vectors (Open Specifications blog:
// "Encryption in SMB 3.0: a protocol perspective", 2012; "SMB 3.1.1
// encryption in Windows 10", 2015; "SMB 3.1.1 pre-authentication integrity
// in Windows 10", 2015).

// TestPreauthVector chains the blog's NEGOTIATE and SESSION_SETUP messages.
func TestPreauthVector(t *testing.T) {
	steps := []struct{ msg, want string }{
		{"FE534D4240000100000000000000800000000000000000000100000000000000FFFE000000000000" +
			"00000000000000000000000000000000000000000000000024000500000000003F000000ECD86F32" +
			"6276024F9F7752B89BB33F3A70000000020000000202100200030203110300000100260000000000" +
			"010020000100FA49E6578F1F3A9F4CD3E9CC14A67AA884B3D05844E0E5A118225C15887F32FF0000" +
			"0200060000000000020002000100",
			"DD94EFC5321BB618A2E208BA8920D2F422992526947A409B5037DE1E0FE8C7362B8C47122594CDE0" +
				"CE26AA9DFC8BCDBDE0621957672623351A7540F1E54A0426"},
		{"FE534D4240000100000000000000010001000000000000000100000000000000FFFE000000000000" +
			"000000000000000000000000000000000000000000000000410001001103020039CBCAF329714942" +
			"BDCE5D60F09AB3FB2F000000000080000000800000008000D8DAE5ADCBAED00109094AB095AED001" +
			"80004001C00100006082013C06062B0601050502A08201303082012CA01A3018060A2B0601040182" +
			"3702021E060A2B06010401823702020AA282010C048201084E45474F455854530100000000000000" +
			"60000000700000007C7CC0FD06D6362D02DDE1CF343BFE292900F49750B4AA97934D9C4296B26E51" +
			"FD370471B235E15A50DAE15BD5489C87000000000000000060000000010000000000000000000000" +
			"5C33530DEAF90D4DB2EC4AE3786EC3084E45474F4558545303000000010000004000000098000000" +
			"7C7CC0FD06D6362D02DDE1CF343BFE295C33530DEAF90D4DB2EC4AE3786EC3084000000058000000" +
			"3056A05430523027802530233121301F06035504031318546F6B656E205369676E696E6720507562" +
			"6C6963204B65793027802530233121301F06035504031318546F6B656E205369676E696E67205075" +
			"626C6963204B6579010026000000000001002000010060A3C3B95C3C7CCD51EC536648D9B3AC74C4" +
			"83CA5B65385A251117BEB30712E50000020004000000000001000200",
			"324BFA92A4F3A190E466EBEA08D9C110DC88BFED758D9846ECC6F541CC1D02AE3C94A79F36011E99" +
				"7E13F841B91B50957AD07B19C8E2539C0B23FDAE09D2C513"},
		{"FE534D4240000100000000000100800000000000000000000200000000000000FFFE000000000000" +
			"00000000000000000000000000000000000000000000000019000001010000000000000058004A00" +
			"0000000000000000604806062B0601050502A03E303CA00E300C060A2B06010401823702020AA22A" +
			"04284E544C4D5353500001000000978208E200000000000000000000000000000000060380250000" +
			"000F",
			"AC0B0F2B9986257700365E416D142A6EDC96DF03594A19E52A15F6BD0D041CD5D432F8ED42C55E33" +
				"197A50C9EC00F1462B50C592211B1471A04B56088FDFD5F9"},
	}
	var p Preauth
	for i, s := range steps {
		p.Add(unhex(t, s.msg))
		if got := hex.EncodeToString(p.Value[:]); !strings.EqualFold(got, s.want) {
			t.Fatalf("step %d: %s\nwant %s", i+1, got, s.want)
		}
	}
	p.Reset()
	if p.Value != ([64]byte{}) {
		t.Fatal("reset left a value")
	}
}

// TestSMB3Vectors derives the blog's keys and opens its transform
// messages: SMB 3.0 (AES-128-CCM) both directions, 3.1.1 (AES-128-GCM)
// both directions. A changed byte anywhere fails authentication.
func TestSMB3Vectors(t *testing.T) {
	var ph311 [64]byte
	copy(ph311[:], unhex(t, "B23F3CBFD69487D9832B79B1594A367CDD950909B774C3A4C412B4FCEA9EDDDBA7DB256BA2EA30E9"+
		"77F11F9B113247578E0E915C6D2A513B8F2FCA5707DC8770"))
	for _, c := range []struct {
		name             string
		dialect, cipher  uint16
		key              string
		preauth          *[64]byte
		c2sKey, s2cKey   string
		dir              int
		transform, plain string
	}{
		{"3.0 client to server", Dialect300, AES128CCM, "B4546771B515F766A86735532DD6C4F0", nil,
			"261B72350558F2E9DCF613070383EDBF", "8FE2B57EC34D2DB5B1A9727F526BBDB5", ClientToServer,
			"FD534D4281A286535415445DAE393921E44FA42E66E69A111892584FB5ED524A" +
				"744DA3EE87000000000001001100001400E4080025C8FEE16605A437832D1CD5" +
				"2DA9F4645333482A175FE5384563F45FCDAFAEF38BC62BA4D5C62897996625A4" +
				"4C29BE5658DE2E6117585779E7B59FFD971278D08580D7FA899E410E910EABF5" +
				"AA1DB43050B33B49182637759AC15D84BFCDF5B6B238993C0F4CF4D6012023F6" +
				"C627297075D84B7803912D0A9639634453595EF3E33FFE4E7AC2AB",
			"FE534D4240000100000000000900400008000000000000000400000000000000" +
				"FFFE0000010000001100001400E4080000000000000000000000000000000000" +
				"3100700017000000000000000000000015010000390000020100000039020000" +
				"00000000000000007000000000000000536D623320656E6372797074696F6E20" +
				"74657374696E67"},
		{"3.0 server to client", Dialect300, AES128CCM, "B4546771B515F766A86735532DD6C4F0", nil,
			"261B72350558F2E9DCF613070383EDBF", "8FE2B57EC34D2DB5B1A9727F526BBDB5", ServerToClient,
			"FD534D42A6015530A18F6D9AFFE22AFAE8E66484860000000000000011000014" +
				"00E4080050000000000001001100001400E40800DBF46435C5F14169293CE079" +
				"E344479BF670227E49873F458672C3098DAC467DD5809F369D67409166515787" +
				"1483E01F7BECD02064EAC3E235F913668BBC2F097980D4B378F1993EFF6E60D1" +
				"77309E5B",
			"FE534D4240000100000000000900210009000000000000000400000000000000" +
				"FFFE0000010000001100001400E4080000000000000000000000000000000000" +
				"11000000170000000000000000000000"},
		{"3.1.1 client to server", Dialect311, AES128GCM, "419FDDF34C1E001909D362AE7FB6AF79", &ph311,
			"A2F5E80E5D59103034F32E52F698E5EC", "748C50868C90F302962A5C35F5F9A8BF", ClientToServer,
			"FD534D42BD73D97D2BC9001BCAFAC0FDFF5FEEBCC7D6822D269CAF48904C664C0000000087000000" +
				"0000010025000000001000006ECDD2A7AFC7B47763057A041B8FD4DAFFE990B70C9E09D36C084E02" +
				"D14EF247F8BDE38ACF6256F8B1D3B56F77FBDEB312FEA5E92CBCC1ED8FB2EBBFAA75E49A4A394BB4" +
				"4576545567C24D4C014D47C9FBDFDAFD2C4F9B72F8D256452620A299F48E29E53D6B61D1C13A19E9" +
				"1AF013F00D17E3ABC2FC3D36C8C1B6B93973253852DBD442E46EE8",
			"FE534D4240000100000000000900010008000000000000000500000000000000FFFE000001000000" +
				"25000000001000000000000000000000000000000000000031007000170000000000000000000000" +
				"0600000004000000010000000400000000000000000000007000000000000000536D623320656E63" +
				"72797074696F6E2074657374696E67"},
		{"3.1.1 server to client", Dialect311, AES128GCM, "419FDDF34C1E001909D362AE7FB6AF79", &ph311,
			"A2F5E80E5D59103034F32E52F698E5EC", "748C50868C90F302962A5C35F5F9A8BF", ServerToClient,
			"FD534D42ACBE1CB7ED343ADF1725EF144D90D4B0E06831DD2E8EB7B4000000000000000050000000" +
				"00000100250000000010000026BBBF949983A6C1C796559D0F2C510CB651D1F7B6AC8DED32A2A0B8" +
				"F2D793A815C6F6B848D69767A215841A42D400AE6DDB5F0B44173A014973321FDD7950DA6179159B" +
				"82E03C9E18A050FF0EA1C967",
			"FE534D4240000100000000000900010001000000000000000500000000000000FFFE000001000000" +
				"25000000001000000000000000000000000000000000000011000000170000000000000000000000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := unhex(t, c.key)
			// The KDF itself: the blog's encryption and decryption keys.
			label, c2sCtx, s2cCtx := label30, ctxServerIn, ctxServerOut
			if c.dialect == Dialect311 {
				label, c2sCtx, s2cCtx = labelC2S311, c.preauth[:], c.preauth[:]
			}
			c2s := KDF(key, label, c2sCtx, 128)
			s2cLabel := label
			if c.dialect == Dialect311 {
				s2cLabel = labelS2C311
			}
			s2c := KDF(key, s2cLabel, s2cCtx, 128)
			if !strings.EqualFold(hex.EncodeToString(c2s), c.c2sKey) || !strings.EqualFold(hex.EncodeToString(s2c), c.s2cKey) {
				t.Fatalf("keys %x %x", c2s, s2c)
			}
			s, err := NewSession(c.dialect, c.cipher, key, c.preauth)
			if err != nil {
				t.Fatal(err)
			}
			msg, want := unhex(t, c.transform), unhex(t, c.plain)
			if h, err := smbrpc.ParseSMB2Transform(msg); err != nil || h.SessionID == 0 {
				t.Fatalf("session %x %v", h.SessionID, err)
			}
			// Sealing the plaintext again with the message's nonce gives
			// the message byte for byte.
			if again := s.Seal(c.dir, [16]byte(msg[20:36]), binary.LittleEndian.Uint64(msg[44:]), want); !bytes.Equal(again, msg) {
				t.Fatalf("seal:\n% x\nwant % x", again, msg)
			}
			got, err := s.Open(c.dir, msg, nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("open: %v\n% x\nwant % x", err, got, want)
			}
			if _, err := s.Open(1-c.dir, msg, nil); !errors.Is(err, ErrOpen) {
				t.Fatalf("the other direction's key opened it: %v", err)
			}
			for _, i := range []int{4, 20, 40, 51, len(msg) - 1} {
				bad := bytes.Clone(msg)
				bad[i] ^= 0x80
				if _, err := s.Open(c.dir, bad, nil); err == nil {
					t.Fatalf("byte %d changed and still opened", i)
				}
			}
			if _, err := s.Open(c.dir, msg[:len(msg)-1], nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("cut short: %v", err)
			}
			wrong := bytes.Clone(key)
			wrong[0] ^= 1
			ws, _ := NewSession(c.dialect, c.cipher, wrong, c.preauth)
			if _, err := ws.Open(c.dir, msg, nil); !errors.Is(err, ErrOpen) {
				t.Fatalf("wrong key: %v", err)
			}
		})
	}
}

// TestSessionRoundTrip seals with each cipher under 3.1.1 and opens
// through the transform: AES-256 keys are 32 bytes (L = 256), and a
// message opens only in its own direction.
func TestSessionRoundTrip(t *testing.T) {
	key := unhex(t, "00112233445566778899aabbccddeeff")
	var ph [64]byte
	ph[0] = 7
	for _, cid := range []uint16{AES128CCM, AES128GCM, AES256CCM, AES256GCM} {
		t.Run(CipherName(cid), func(t *testing.T) {
			s, err := NewSession(Dialect311, cid, key, &ph)
			if err != nil {
				t.Fatal(err)
			}
			plain := []byte("\xfeSMB compounded messages would be here")
			var nonce [16]byte
			for i := range nonce {
				nonce[i] = byte(20 + i)
			}
			msg := s.Seal(ServerToClient, nonce, 0x25, plain)
			if h, err := smbrpc.ParseSMB2Transform(msg); err != nil || h.SessionID != 0x25 || len(msg) != hdrLen+len(plain) {
				t.Fatalf("sealed % x", msg)
			}
			got, err := s.Open(ServerToClient, msg, nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%v %q", err, got)
			}
			if _, err := s.Open(ClientToServer, msg, nil); !errors.Is(err, ErrOpen) {
				t.Fatalf("other direction: %v", err)
			}
		})
	}
	if _, err := NewSession(Dialect300, AES128GCM, key, nil); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("GCM under 3.0: %v", err)
	}
	if _, err := NewSession(Dialect311, 9, key, &ph); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("cipher 9: %v", err)
	}
	if _, err := NewSession(Dialect311, AES128GCM, key, nil); err == nil {
		t.Fatal("3.1.1 without a preauthentication hash")
	}
}

// TestKeyLength: AES-256 ciphers get 32-byte keys whose first half is not
// the 128-bit key (L enters the PRF input).
func TestKeyLength(t *testing.T) {
	k := []byte("0123456789abcdef")
	a, b := KDF(k, labelC2S311, make([]byte, 64), 128), KDF(k, labelC2S311, make([]byte, 64), 256)
	if len(a) != 16 || len(b) != 32 || bytes.Equal(a, b[:16]) {
		t.Fatalf("%x %x", a, b)
	}
}
