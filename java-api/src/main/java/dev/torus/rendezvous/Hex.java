package dev.torus.rendezvous;

/** Short printable previews of opaque byte values for error messages. */
final class Hex {
    private Hex() {}

    static String preview(byte[] v) {
        StringBuilder sb = new StringBuilder(v.length + " bytes [");
        sb.append(java.util.HexFormat.of().formatHex(v, 0, Math.min(v.length, 16)));
        if (v.length > 16) {
            sb.append("...");
        }
        return sb.append(']').toString();
    }
}
