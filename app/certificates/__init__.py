"""The registry's record of its signing certificates and their revocations, mirrored from the key
folder and logged in the transparency log; publishing asks it whether a signer may still sign."""
