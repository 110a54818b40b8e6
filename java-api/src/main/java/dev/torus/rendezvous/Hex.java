package dev.torus.rendezvous;

/** Short printable previews of opaque byte values for error messages. */
final class Hex {
    private Hex() {}

    static String preview(byte[] v) {
        StringBuilder sb = new StringBuilder(v.length + " bytes [");
        for (int i = 0; i < Math.min(v.length, 16); i++) {
            sb.append(String.format("%02x", v[i] & 0xff));
        }
        if (v.length > 16) {
            sb.append("...");
        }
        return sb.append(']').toString();
    }
}
