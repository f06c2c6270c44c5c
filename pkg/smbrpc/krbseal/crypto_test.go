package krbseal

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 3961 A.1.
func TestNFold(t *testing.T) {
	for _, c := range []struct {
		bits int
		in   string
		want string
	}{
		{64, "012345", "be072631276b1955"},
		{56, "password", "78a07b6caf85fa"},
		{64, "Rough Consensus, and Running Code", "bb6ed30870b7f0e0"},
		{168, "password", "59e4a8ca7c0385c3c37b3f6d2000247cb6e6bd5b3e"},
		{192, "MASSACHVSETTS INSTITVTE OF TECHNOLOGY", "db3b0d8f0b061e603282b308a50841229ad798fab9540c1b"},
		{168, "Q", "518a54a215a8452a518a54a215a8452a518a54a215"},
		{168, "ba", "fb25d531ae8974499f52fd92ea9857c4ba24cf297e"},
		{64, "kerberos", "6b65726265726f73"},
		{128, "kerberos", "6b65726265726f737b9b5b2b93132b93"},
		{168, "kerberos", "8372c236344e5f1550cd0747e15d62ca7a5a3bcea4"},
		{256, "kerberos", "6b65726265726f737b9b5b2b93132b935c9bdcdad95c9899c4cae4dee6d6cae4"},
	} {
		if got := hex.EncodeToString(nfold([]byte(c.in), c.bits/8)); got != c.want {
			t.Errorf("%d-fold(%q) = %s, want %s", c.bits, c.in, got, c.want)
		}
	}
}

// RFC 3962 Appendix B: AES-128 CTS with a zero IV.
func TestCTS(t *testing.T) {
	key := unhex(t, "636869636b656e207465726979616b69")
	plain := []byte("I would like the General Gau's Chicken, please, and wonton soup.")
	for _, c := range []struct {
		n    int
		want string
	}{
		{17, "c6353568f2bf8cb4d8a580362da7ff7f97"},
		{31, "fc00783e0efdb2c1d445d4c8eff7ed2297687268d6ecccc0c07b25e25ecfe5"},
		{32, "39312523a78662d5be7fcbcc98ebf5a897687268d6ecccc0c07b25e25ecfe584"},
		{47, "97687268d6ecccc0c07b25e25ecfe584b3fffd940c16a18c1b5549d2f838029e39312523a78662d5be7fcbcc98ebf5"},
		{48, "97687268d6ecccc0c07b25e25ecfe5849dad8bbb96c4cdc03bc103e1a194bbd839312523a78662d5be7fcbcc98ebf5a8"},
		{64, "97687268d6ecccc0c07b25e25ecfe58439312523a78662d5be7fcbcc98ebf5a84807efe836ee89a526730dbc2f7bc8409dad8bbb96c4cdc03bc103e1a194bbd8"},
	} {
		ct := make([]byte, c.n)
		ctsEncrypt(key, ct, plain[:c.n])
		if got := hex.EncodeToString(ct); got != c.want {
			t.Errorf("encrypt %d bytes = %s, want %s", c.n, got, c.want)
		}
		back := make([]byte, c.n)
		if err := ctsDecrypt(key, back, unhex(t, c.want)); err != nil || !bytes.Equal(back, plain[:c.n]) {
			t.Errorf("decrypt %d bytes = %q, %v", c.n, back, err)
		}
	}
}

// A round trip through each etype, and a wrong key or a flipped byte
// refused (never plain text of garbage).
func TestDecryptRoundTrip(t *testing.T) {
	for _, et := range []int{ETypeAES128, ETypeAES256, ETypeRC4} {
		key := bytes.Repeat([]byte{0x42}, keyLen(et))
		for _, n := range []int{0, 1, 15, 16, 17, 100} {
			plain := bytes.Repeat([]byte{'p'}, n)
			conf := bytes.Repeat([]byte{7}, 16)
			if et == ETypeRC4 {
				conf = conf[:8]
			}
			ct := encrypt(et, key, 2, conf, plain)
			got, err := decrypt(et, key, 2, ct)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s %d bytes: %q, %v", ETypeName(et), n, got, err)
			}
			if _, err := decrypt(et, key, 3, ct); !errors.Is(err, ErrIntegrity) {
				t.Errorf("%s: other usage: %v", ETypeName(et), err)
			}
			bad := bytes.Repeat([]byte{0x43}, keyLen(et))
			if _, err := decrypt(et, bad, 2, ct); !errors.Is(err, ErrIntegrity) {
				t.Errorf("%s: wrong key: %v", ETypeName(et), err)
			}
			ct[len(ct)/2] ^= 1
			if _, err := decrypt(et, key, 2, ct); !errors.Is(err, ErrIntegrity) {
				t.Errorf("%s: flipped byte: %v", ETypeName(et), err)
			}
		}
	}
}
