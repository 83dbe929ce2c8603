"""Support tickets: who may do what, where a ticket goes, and every move of a ticket.

A ticket belongs to a member's cell and is the responsibility of one unit at a time
(``Ticket.unit_id``): first the nearest unit above the cell that has support staff; when nobody
claims it within the SLA (working time, see ``bot.workhours``) it escalates to the next staffed
unit up, and so on to the root. Every move is a conditional UPDATE (the row must still be in the
state the move starts from), so two staff claiming at once, or a claim racing an escalation, end
with exactly one winner on SQLite and PostgreSQL alike.

Staff receive tickets in their private chats or, when their unit has a staff group, in one forum
topic per ticket. Everything reaches people through the outbox; the only direct channel call is
creating a forum topic, done by the ``ticket_topic`` job. The SLA, topic creation, the check that
an answer was delivered and closing resolved tickets are durable ``DueJob`` rows, so a restart
loses none of them.

Access: staff and admins act on the tickets of cells inside the units they serve; a cell's
secretary or deputy may view, reply and answer with an FAQ entry. Buttons only name a ticket and
a verb; every handler checks the actor against the ticket's cell on the server. The member's
identity goes only to those who may act on the ticket.

Logs carry ids only: never message text, names or phone numbers.

The package has one module per reason to change: ``policy`` (who may do what, limits, the SLA
deadline), ``queries``, ``buttons`` (the typed data of its buttons), ``render`` (texts, cards,
buttons), ``notify`` (who hears, through the outbox), ``moves`` (the state machine) and ``jobs``
(timed work); this module is their public surface, so callers write ``support_core.claim``
whichever module holds it.
"""

from __future__ import annotations

from handlers.support_core.buttons import (
    GroupPress as GroupPress,
)
from handlers.support_core.buttons import (
    GroupVerb as GroupVerb,
)
from handlers.support_core.buttons import (
    MemberPress as MemberPress,
)
from handlers.support_core.buttons import (
    MemberVerb as MemberVerb,
)
from handlers.support_core.buttons import (
    StaffVerb as StaffVerb,
)
from handlers.support_core.buttons import (
    TicketPress as TicketPress,
)
from handlers.support_core.jobs import (
    ADMINS_EVERY as ADMINS_EVERY,
)
from handlers.support_core.jobs import (
    create_topic_after_commit as create_topic_after_commit,
)
from handlers.support_core.jobs import (
    on_autoclose as on_autoclose,
)
from handlers.support_core.jobs import (
    on_delivery as on_delivery,
)
from handlers.support_core.jobs import (
    on_sla as on_sla,
)
from handlers.support_core.jobs import (
    on_topic as on_topic,
)
from handlers.support_core.jobs import (
    post_in_group_instead as post_in_group_instead,
)
from handlers.support_core.jobs import (
    record_topic as record_topic,
)
from handlers.support_core.jobs import (
    tell_admins_overdue as tell_admins_overdue,
)
from handlers.support_core.jobs import (
    tell_delivery as tell_delivery,
)
from handlers.support_core.moves import (
    add_member_message as add_member_message,
)
from handlers.support_core.moves import (
    claim as claim,
)
from handlers.support_core.moves import (
    close as close,
)
from handlers.support_core.moves import (
    forget_tickets as forget_tickets,
)
from handlers.support_core.moves import (
    mark_db as mark_db,
)
from handlers.support_core.moves import (
    move as move,
)
from handlers.support_core.moves import (
    open_ticket as open_ticket,
)
from handlers.support_core.moves import (
    photo_view as photo_view,
)
from handlers.support_core.moves import (
    release_claims as release_claims,
)
from handlers.support_core.moves import (
    reopen as reopen,
)
from handlers.support_core.moves import (
    resolve as resolve,
)
from handlers.support_core.moves import (
    say as say,
)
from handlers.support_core.moves import (
    staff_answer as staff_answer,
)
from handlers.support_core.moves import (
    ticket_photos as ticket_photos,
)
from handlers.support_core.notify import (
    Chat as Chat,
)
from handlers.support_core.notify import (
    announce as announce,
)
from handlers.support_core.notify import (
    member_buttons as member_buttons,
)
from handlers.support_core.notify import (
    post as post,
)
from handlers.support_core.notify import (
    private_chats as private_chats,
)
from handlers.support_core.notify import (
    refresh_cards as refresh_cards,
)
from handlers.support_core.notify import (
    request_topic as request_topic,
)
from handlers.support_core.notify import (
    staff_chats as staff_chats,
)
from handlers.support_core.notify import (
    tell_member as tell_member,
)
from handlers.support_core.notify import (
    tell_staff as tell_staff,
)
from handlers.support_core.policy import (
    ACTIVE as ACTIVE,
)
from handlers.support_core.policy import (
    ALLOWED_MIME as ALLOWED_MIME,
)
from handlers.support_core.policy import (
    ALLOWED_SUFFIXES as ALLOWED_SUFFIXES,
)
from handlers.support_core.policy import (
    AUTOCLOSE_AFTER as AUTOCLOSE_AFTER,
)
from handlers.support_core.policy import (
    CARD_HISTORY as CARD_HISTORY,
)
from handlers.support_core.policy import (
    CATEGORIES as CATEGORIES,
)
from handlers.support_core.policy import (
    DELIVERY_CHECK_AFTER as DELIVERY_CHECK_AFTER,
)
from handlers.support_core.policy import (
    DELIVERY_CHECKS as DELIVERY_CHECKS,
)
from handlers.support_core.policy import (
    HELPER_ROLES as HELPER_ROLES,
)
from handlers.support_core.policy import (
    HELPER_VERBS as HELPER_VERBS,
)
from handlers.support_core.policy import (
    MAX_TEXT as MAX_TEXT,
)
from handlers.support_core.policy import (
    QUEUE_ROLES as QUEUE_ROLES,
)
from handlers.support_core.policy import (
    SNIPPET as SNIPPET,
)
from handlers.support_core.policy import (
    STAFF_ROLES as STAFF_ROLES,
)
from handlers.support_core.policy import (
    TOPIC_TIMEOUT as TOPIC_TIMEOUT,
)
from handlers.support_core.policy import (
    TOPIC_TRIES as TOPIC_TRIES,
)
from handlers.support_core.policy import (
    VERBS as VERBS,
)
from handlers.support_core.policy import (
    Note as Note,
)
from handlers.support_core.policy import (
    calendar as calendar,
)
from handlers.support_core.policy import (
    may as may,
)
from handlers.support_core.policy import (
    sla_deadline as sla_deadline,
)
from handlers.support_core.queries import (
    active_tickets as active_tickets,
)
from handlers.support_core.queries import (
    add_message as add_message,
)
from handlers.support_core.queries import (
    attachment_problem as attachment_problem,
)
from handlers.support_core.queries import (
    first_unit as first_unit,
)
from handlers.support_core.queries import (
    group_for_chat as group_for_chat,
)
from handlers.support_core.queries import (
    group_for_unit as group_for_unit,
)
from handlers.support_core.queries import (
    history as history,
)
from handlers.support_core.queries import (
    lock_ticket as lock_ticket,
)
from handlers.support_core.queries import (
    reload as reload,
)
from handlers.support_core.queries import (
    staff_of as staff_of,
)
from handlers.support_core.queries import (
    ticket_of_post as ticket_of_post,
)
from handlers.support_core.queries import (
    ticket_of_topic as ticket_of_topic,
)
from handlers.support_core.queries import (
    tickets_today as tickets_today,
)
from handlers.support_core.queries import (
    topic_of as topic_of,
)
from handlers.support_core.queries import (
    unit_above as unit_above,
)
from handlers.support_core.queries import (
    unit_below as unit_below,
)
from handlers.support_core.render import (
    card_view as card_view,
)
from handlers.support_core.render import (
    category_label as category_label,
)
from handlers.support_core.render import (
    duration_text as duration_text,
)
from handlers.support_core.render import (
    history_line as history_line,
)
from handlers.support_core.render import (
    staff_buttons as staff_buttons,
)
from handlers.support_core.render import (
    status_text as status_text,
)
from handlers.support_core.render import (
    when as when,
)
