package dev.torus.rendezvous;

import java.util.regex.Pattern;

/**
 * Validation of store keys and values, and parsing of {@link Store#add} counters: shared by every
 * {@link Store} implementation, so that all of them refuse the same keys with the same messages.
 */
public final class Keys {
    private static final Pattern SEGMENT = Pattern.compile("[A-Za-z0-9._-]{1,200}");

    private Keys() {}

    public static String check(String argName, String key) {
        if (key == null) {
            throw new IllegalArgumentException(argName + " must not be null");
        }
        if (key.isEmpty() || key.startsWith("/") || key.endsWith("/")) {
            throw new IllegalArgumentException(argName + " must be a non-empty relative path like 'a/b', got '" + key + "'");
        }
        for (String segment : key.split("/", -1)) {
            if (!SEGMENT.matcher(segment).matches() || segment.equals(".") || segment.equals("..")) {
                throw new IllegalArgumentException(argName + " segment '" + segment + "' in '" + key
                        + "' must be 1-200 characters of [A-Za-z0-9._-] and not '.' or '..'");
            }
        }
        return key;
    }

    public static byte[] checkValue(String key, byte[] value, int max) {
        if (value == null) {
            throw new IllegalArgumentException("value for key '" + key + "' must not be null");
        }
        if (value.length > max) {
            throw new IllegalArgumentException("value for key '" + key + "' is " + value.length
                    + " bytes; the store accepts at most " + max + " bytes");
        }
        return value;
    }

    public static long parseCounter(String key, byte[] value) {
        if (value.length == 0 || value.length > 20) {
            throw new StoreException("key '" + key + "' does not hold a counter: expected ASCII decimal, got "
                    + value.length + " bytes");
        }
        try {
            return Long.parseLong(new String(value, java.nio.charset.StandardCharsets.US_ASCII));
        } catch (NumberFormatException e) {
            throw new StoreException("key '" + key + "' does not hold a counter: expected ASCII decimal, got "
                    + Hex.preview(value));
        }
    }
}
