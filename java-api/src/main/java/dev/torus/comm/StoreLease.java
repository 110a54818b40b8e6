package dev.torus.comm;

import dev.torus.rendezvous.Store;

/**
 * Reference-counted use of a store shared by a communicator and the communicators
 * rebuilt or split from it. If the communicator opened the store itself it closes
 * it when the last user releases it; a caller's store is never closed here.
 */
final class StoreLease {
    private final Store store;
    private final boolean owned;
    private int refs;

    StoreLease(Store store, boolean owned) {
        this.store = store;
        this.owned = owned;
    }

    Store store() {
        return store;
    }

    synchronized StoreLease retain() {
        refs++;
        return this;
    }

    synchronized void release() {
        refs--;
        if (refs == 0 && owned) {
            store.close();
        }
    }
}
