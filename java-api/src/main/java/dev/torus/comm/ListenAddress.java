package dev.torus.comm;

import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.SocketException;
import java.net.UnknownHostException;
import java.util.regex.Pattern;

/**
 * Validates the address a Gloo communicator listens on before any native call: Gloo
 * resolves the name itself and, for a name that does not resolve, fails in a way that
 * takes the process down. Here the name must be a syntactically valid host name or IP
 * literal, must resolve, and must belong to an interface of this machine (Gloo binds to
 * it). The result is the numeric address, so Gloo never resolves anything.
 */
final class ListenAddress {
    /** RFC 1123 labels, or an IPv4/IPv6 literal (checked again by the resolver). */
    private static final Pattern NAME = Pattern.compile(
            "(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\\.?");
    private static final Pattern IPV6 = Pattern.compile("[0-9A-Fa-f:.]{2,45}");
    private static final Pattern DOTTED = Pattern.compile("[0-9.]+");

    private ListenAddress() {}

    /** The numeric address of {@code hostname}, or IllegalArgumentException naming {@code arg}. */
    static String resolve(String arg, String hostname) {
        if (hostname == null || hostname.isBlank()) {
            throw new IllegalArgumentException(arg + " must be a host name or IP address of this machine, got '"
                    + hostname + "'");
        }
        String h = hostname.trim();
        boolean ipv6 = h.contains(":");
        if (ipv6 ? !IPV6.matcher(h).matches() : !NAME.matcher(h).matches()) {
            throw new IllegalArgumentException(arg + " must be a host name or IP address of this machine, got '"
                    + hostname + "' (not a valid name or address)");
        }
        if (!ipv6 && DOTTED.matcher(h).matches() && !isIpv4Literal(h)) {
            throw new IllegalArgumentException(arg + " must be a host name or IP address of this machine, got '"
                    + hostname + "' (not a valid IPv4 address: four numbers 0-255)");
        }
        if (!ipv6 && h.endsWith(".") && h.length() > 1) {
            h = h.substring(0, h.length() - 1); // the root label: "localhost." is "localhost"
        }
        InetAddress a;
        try {
            a = InetAddress.getByName(h);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException(arg + " must be a host name or IP address of this machine, got '"
                    + hostname + "', which does not resolve");
        } catch (SecurityException e) {
            throw new IllegalArgumentException(arg + " '" + hostname + "' cannot be resolved here: " + e.getMessage());
        }
        if (a.isAnyLocalAddress()) {
            throw new IllegalArgumentException(arg + " must be the address of one interface of this machine, got '"
                    + hostname + "' (the wildcard address: Gloo binds to one interface and peers connect to it)");
        }
        try {
            if (!a.isLoopbackAddress() && NetworkInterface.getByInetAddress(a) == null) {
                throw new IllegalArgumentException(arg + " must be an address of this machine, but '" + hostname
                        + "' resolves to " + a.getHostAddress() + ", which no local interface has");
            }
        } catch (SocketException e) {
            throw new IllegalArgumentException(arg + " '" + hostname + "': cannot list the local interfaces: "
                    + e.getMessage());
        }
        return a.getHostAddress();
    }

    private static boolean isIpv4Literal(String h) {
        String[] parts = h.split("\\.", -1);
        if (parts.length != 4) {
            return false;
        }
        for (String p : parts) {
            if (p.isEmpty() || p.length() > 3 || Integer.parseInt(p) > 255) {
                return false;
            }
        }
        return true;
    }
}
