"""The registry's one authorization policy: which principal may act on what.

Views declare the scope they need (:func:`app.http.permissions.requires`, which calls
:func:`require_scope`) and pass the principal on; services ask the rules here about the resource
they hold. Every rule raises :class:`~app.core.errors.Forbidden` (403) when it refuses, and
nothing else in the registry decides who may act.
"""

from __future__ import annotations

from collections.abc import Collection

from app.access.principal import ASSOCIATION, OPERATOR, Principal
from app.access.scopes import Permission
from app.core.errors import Forbidden


def require_scope(principal: Principal, permission: Permission) -> None:
    """Raise 403 unless the principal's token is scoped to ``permission``."""
    if permission not in principal.scopes:
        raise Forbidden(f"This token is not scoped to {permission.value!r}.")


def may_edit(principal: Principal, association: str | None) -> None:
    """Raise 403 unless the principal may edit a document owned by ``association``.

    Operators edit everything; an association's publisher edits only its own association's
    documents (``association`` None means a registry-owned document such as the declaration).
    """
    if principal.role == OPERATOR:
        return
    if association is None or association != principal.association:
        raise Forbidden("This token may only act on its own association's documents.")


def may_publish_as(principal: Principal, association: str | None) -> None:
    """Raise 403 unless the principal is ``association``'s own publisher.

    Statements are published in an association's own name only: not even an operator may write
    one for it.
    """
    if principal.role != ASSOCIATION or association is None \
            or principal.association != association:
        raise Forbidden("Statements are written and published only by their own association.")


def may_edit_document(principal: Principal, association: str | None, *,
                      owned_by_association: bool) -> None:
    """Raise 403 unless the principal may create, edit or publish a document of ``association``:
    only that association for a kind its associations own (:func:`may_publish_as`), else as
    :func:`may_edit` says."""
    if owned_by_association:
        may_publish_as(principal, association)
    else:
        may_edit(principal, association)


def may_approve_ca(principal: Principal) -> None:
    """Raise 403 unless the principal is an operator: only operators approve an association's
    own CA certificate."""
    if principal.role != OPERATOR:
        raise Forbidden("Only an operator approves an association's CA certificate.")


def may_export(principal: Principal | None, *, scope_association: str | None,
               version_signers: Collection[str] | None) -> None:
    """Raise 403 unless the principal may make an export of this scope.

    An operator, or the command line on the host (``principal`` None), exports anything. An
    association exports only its own record: the ``association`` scope of itself
    (``scope_association``), or versions (``version_signers``: their signers; None when the
    scope does not name versions) that it signed itself. Every export is signed by the registry
    and logged for good; the declaration's and the priorities' exports are the registry's own
    publications, which its operators make.
    """
    if principal is None or principal.role == OPERATOR:
        return
    association = principal.association
    if scope_association == association:
        return
    if version_signers is not None and all(signer == association for signer in version_signers):
        return
    raise Forbidden(f"An association exports only its own record: the scope "
                    f'{{"association": "{association}"}}, or versions of its own statements. '
                    f"Other exports are made by the registry's operators.")


def may_read_activity(principal: Principal) -> None:
    """Raise 403 unless the principal is an operator: the activity trail is the operators'."""
    if principal.role != OPERATOR:
        raise Forbidden("Only operators may read the activity trail.")


def onboards(principal: Principal | None, association: str | None) -> bool:
    """Whether making a token for ``association`` would onboard it.

    An association's token made by anyone but the association itself (an operator, or the
    command line on the host) is an onboarding act: it starts the association's own chain.
    """
    return association is not None and (principal is None or principal.role == OPERATOR)


def may_mint(principal: Principal, association: str | None,
             scopes: frozenset[Permission]) -> None:
    """Raise 403 unless ``principal`` may make a token for ``association`` with ``scopes``."""
    if principal.role == ASSOCIATION and association != principal.association:
        raise Forbidden("An association may only create tokens for itself.")
    if onboards(principal, association) \
            and Permission.ONBOARD_ASSOCIATIONS not in principal.scopes:
        raise Forbidden(f"An operator makes an association's token only to onboard it, and "
                        f"this token is not scoped to "
                        f"{Permission.ONBOARD_ASSOCIATIONS.value!r}.")
    missing = scopes - principal.scopes
    if missing:
        raise Forbidden("A token cannot grant scopes its maker does not hold: "
                        + ", ".join(sorted(p.value for p in missing)) + ".")
