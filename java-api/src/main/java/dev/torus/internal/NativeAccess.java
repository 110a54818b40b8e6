package dev.torus.internal;

/**
 * The token that unlocks raw native addresses ({@code Tensor.dataAddress}, {@code MemoryBuffer.address},
 * {@code Stream.handle}) for Torus's own packages.
 *
 * <p>This package is exported only to {@code dev.torus.jcuda} (the JCuda interop jar's automatic
 * module name), a marked door rather than a lock. Code in any other module can
 * therefore neither name {@link #TOKEN} nor read it by reflection, and every method that takes it
 * refuses anything else (a {@code null} included). On the class path, where no module boundary
 * exists, the token only marks a call as internal; it protects nothing there.
 */
public final class NativeAccess {

    /** The one instance. */
    public static final NativeAccess TOKEN = new NativeAccess();

    private NativeAccess() {}

    /**
     * Checks that {@code token} is {@link #TOKEN}.
     *
     * @throws IllegalArgumentException naming {@code what} if it is not
     */
    public static void check(NativeAccess token, String what) {
        if (token != TOKEN) {
            throw new IllegalArgumentException(what + ": token must be Torus's internal access token, got " + token
                    + "; raw native addresses are not part of the public API");
        }
    }

    @Override
    public String toString() {
        return "NativeAccess.TOKEN";
    }
}
