"""Who may do what, where: roles as data, scopes from grants, one check for every page.

A permission is granted by a role; a grant scopes the role to everything (operator), a region,
a school, one class (class teacher), or a parent's own children. ``Principal.can`` is the only
access check the console uses, so the role matrix test exercises exactly what users get.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


class Role(enum.StrEnum):
    OPERATOR = "operator"
    REGIONAL_OPERATOR = "regional_operator"
    SCHOOL_ADMIN = "school_admin"
    DUTY_DEPUTY = "duty_deputy"  # deputy director on duty for a shift (responsible for the system)
    CLASS_TEACHER = "class_teacher"
    SOCIAL_PEDAGOGUE = "social_pedagogue"
    # аға тәлімгер (seed 002): assists the deputy on duty and the social pedagogue
    SENIOR_COUNSELLOR = "senior_counsellor"
    CANTEEN_MANAGER = "canteen_manager"
    PARENT = "parent"
    # The gifted-children registry (decree No. 997): a coordinator of a school or of a region.
    GIFTED_COORDINATOR = "gifted_coordinator"
    REGIONAL_GIFTED_COORDINATOR = "regional_gifted_coordinator"
    # The badge module (the Elbasy Medal): who each of them reaches is the module's own
    # assignment (own record, assigned participants, overseen mentors, the centre), scope "badge".
    BADGE_PARTICIPANT = "badge_participant"
    BADGE_REPRESENTATIVE = "badge_representative"  # a minor participant's legal representative
    BADGE_MENTOR = "badge_mentor"
    BADGE_EXPERT = "badge_expert"
    BADGE_COORDINATOR = "badge_coordinator"  # a region's coordinator
    BADGE_CENTRE = "badge_centre"  # a programme centre's head
    # equipment module (seed 000): the school's library desk and equipment officer; the district
    # education department and the regional one approve the lists (both scoped to a region: the
    # accounts have no district grant yet).
    LIBRARIAN = "librarian"
    EQUIPMENT_OFFICER = "equipment_officer"
    DISTRICT_APPROVER = "district_approver"
    REGION_APPROVER = "region_approver"
    # tutoring (seed 001): a project's coordinator (their region's projects), a volunteer tutor
    # (their own groups' journals) and a member of the expert council (their own scores)
    TUTORING_COORDINATOR = "tutoring_coordinator"
    VOLUNTEER = "volunteer"
    COUNCIL_MEMBER = "council_member"


R = Role
_SCHOOL_STAFF = {
    R.SCHOOL_ADMIN,
    R.DUTY_DEPUTY,
    R.CLASS_TEACHER,
    R.SOCIAL_PEDAGOGUE,
    R.SENIOR_COUNSELLOR,
    R.CANTEEN_MANAGER,
}
# Who answers for the system on a shift and who assists them (seed 002).
_DUTY_TEAM = {R.SCHOOL_ADMIN, R.DUTY_DEPUTY, R.SOCIAL_PEDAGOGUE, R.SENIOR_COUNSELLOR}
_ADMINS = {R.OPERATOR, R.REGIONAL_OPERATOR, R.SCHOOL_ADMIN}

# permission -> roles that have it (their scope still applies)
PERMISSIONS: dict[str, frozenset[Role]] = {
    k: frozenset(v)
    for k, v in {
        "api.docs": {R.OPERATOR},  # the OpenAPI schema: a map of every endpoint
        "schools.view": {R.OPERATOR, R.REGIONAL_OPERATOR},
        "schools.manage": {R.OPERATOR, R.REGIONAL_OPERATOR},
        "users.manage": _ADMINS,
        "audit.view": {R.OPERATOR, R.SCHOOL_ADMIN},
        "students.view": {R.OPERATOR, R.REGIONAL_OPERATOR} | _SCHOOL_STAFF,
        "students.edit": {R.OPERATOR, R.SCHOOL_ADMIN},
        "roster.import": {R.OPERATOR, R.SCHOOL_ADMIN},
        "staff.edit": {R.OPERATOR, R.SCHOOL_ADMIN},
        "consents.edit": {R.OPERATOR, R.SCHOOL_ADMIN, R.CLASS_TEACHER},
        "cards.issue": {R.OPERATOR, R.SCHOOL_ADMIN, R.CLASS_TEACHER},
        "cards.block": {R.OPERATOR, R.SCHOOL_ADMIN, R.CLASS_TEACHER, R.DUTY_DEPUTY},
        "categories.view": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.SOCIAL_PEDAGOGUE,
            R.CANTEEN_MANAGER,
        },
        "categories.edit": {R.OPERATOR, R.SOCIAL_PEDAGOGUE},
        "policy.view": {R.OPERATOR, R.REGIONAL_OPERATOR} | _SCHOOL_STAFF,
        "policy.edit": _ADMINS,
        "reports.attendance": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.DUTY_DEPUTY,
            R.CLASS_TEACHER,
        },
        "reports.meals": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.SOCIAL_PEDAGOGUE,
            R.CANTEEN_MANAGER,
        },
        "reports.library": {R.OPERATOR, R.REGIONAL_OPERATOR, R.SCHOOL_ADMIN, R.CLASS_TEACHER},
        "reports.evacuation": {
            R.OPERATOR,
            R.SCHOOL_ADMIN,
            R.DUTY_DEPUTY,
            R.CLASS_TEACHER,
            R.SENIOR_COUNSELLOR,
        },
        "status.view": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.DUTY_DEPUTY,
            R.SENIOR_COUNSELLOR,
        },
        # the duty roster: who answers for the system on each shift, and the alarms they got
        "duty.view": {R.OPERATOR, R.REGIONAL_OPERATOR} | _DUTY_TEAM,
        "duty.plan": {R.OPERATOR, R.SCHOOL_ADMIN},
        # the card price of a school and the card fees booked
        "cardfee.manage": {R.OPERATOR, R.SCHOOL_ADMIN},
        # the board of trustees' report and the parents' concerns log
        "trustees.view": {R.OPERATOR, R.REGIONAL_OPERATOR, R.SCHOOL_ADMIN, R.DUTY_DEPUTY},
        "concerns.edit": {R.OPERATOR, R.SCHOOL_ADMIN, R.SOCIAL_PEDAGOGUE, R.SENIOR_COUNSELLOR},
        "notifications.view": {R.OPERATOR, R.SCHOOL_ADMIN},
        "parent.view": {R.PARENT},
        "canteen.view": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.CANTEEN_MANAGER,
            R.SOCIAL_PEDAGOGUE,
        },
        "canteen.manage": {R.OPERATOR, R.SCHOOL_ADMIN, R.CANTEEN_MANAGER},
        # social-wallet vouchers: the social pedagogue records them for the school's children
        "vouchers.issue": {R.OPERATOR, R.SOCIAL_PEDAGOGUE},
        # A school admin may stop a stolen edge of their own school at once (it only ever stops
        # their school); new device credentials are issued by the operators who install edges.
        "devices.revoke": _ADMINS,
        "devices.enrol": {R.OPERATOR, R.REGIONAL_OPERATOR},
        # gifted-children registry: roadmaps are the coordinators'; teachers nominate their class
        "gifted.view": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.GIFTED_COORDINATOR,
            R.REGIONAL_GIFTED_COORDINATOR,
        },
        "gifted.edit": {R.OPERATOR, R.GIFTED_COORDINATOR, R.REGIONAL_GIFTED_COORDINATOR},
        "gifted.nominate": {
            R.OPERATOR,
            R.SCHOOL_ADMIN,
            R.CLASS_TEACHER,
            R.GIFTED_COORDINATOR,
            R.REGIONAL_GIFTED_COORDINATOR,
        },
        "gifted.report": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.GIFTED_COORDINATOR,
            R.REGIONAL_GIFTED_COORDINATOR,
        },
        # badges: the participant's own pages (journal, agreement, schedule, rating)
        "badges.participate": {R.BADGE_PARTICIPANT, R.BADGE_REPRESENTATIVE},
        # participants' cards, journals and ratings of the participants the user reaches
        "badges.view": {
            R.OPERATOR,
            R.BADGE_MENTOR,
            R.BADGE_EXPERT,
            R.BADGE_COORDINATOR,
            R.BADGE_CENTRE,
        },
        # confirm / reject / extra task: the participant's current supervisor only
        "badges.decide": {R.BADGE_MENTOR, R.BADGE_EXPERT, R.BADGE_COORDINATOR},
        # overturn a decision, hand a participant to another supervisor
        "badges.review": {R.OPERATOR, R.BADGE_EXPERT, R.BADGE_COORDINATOR},
        # applications, staff invitations, partners, award proposals of a centre
        "badges.centre": {R.OPERATOR, R.BADGE_CENTRE, R.BADGE_COORDINATOR},
        # book lists, centres' registration, individual requirements, commissions, revocation
        "badges.manage": {R.OPERATOR},
        # equipment module
        "equipment.view": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.SCHOOL_ADMIN,
            R.EQUIPMENT_OFFICER,
            R.LIBRARIAN,
            R.DISTRICT_APPROVER,
            R.REGION_APPROVER,
        },
        "equipment.import": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.DISTRICT_APPROVER,
            R.REGION_APPROVER,
        },
        "equipment.campaign": {R.OPERATOR, R.REGIONAL_OPERATOR, R.REGION_APPROVER},
        "equipment.propose": {R.OPERATOR, R.SCHOOL_ADMIN, R.EQUIPMENT_OFFICER},
        "equipment.approve_district": {R.OPERATOR, R.DISTRICT_APPROVER},
        "equipment.approve_region": {R.OPERATOR, R.REGION_APPROVER},
        "equipment.accept": {R.OPERATOR, R.SCHOOL_ADMIN, R.EQUIPMENT_OFFICER},
        "equipment.lend": {R.OPERATOR, R.SCHOOL_ADMIN, R.EQUIPMENT_OFFICER, R.LIBRARIAN},
        # tutoring: projects, growth table, indicators (aggregates, no child's name)
        "tutoring.view": {
            R.OPERATOR,
            R.REGIONAL_OPERATOR,
            R.TUTORING_COORDINATOR,
            R.COUNCIL_MEMBER,
        },
        "tutoring.manage": {R.OPERATOR, R.TUTORING_COORDINATOR},
        # the attendance journal: a volunteer sees only their own groups
        "tutoring.journal": {R.OPERATOR, R.TUTORING_COORDINATOR, R.VOLUNTEER},
        # scoring applications: a council member scores only as themselves
        "tutoring.council": {R.COUNCIL_MEMBER},
    }.items()
}

# Which scope each role's grant must carry.
SCOPE_OF_ROLE: dict[Role, str] = {
    R.OPERATOR: "all",
    R.REGIONAL_OPERATOR: "region",
    R.SCHOOL_ADMIN: "school",
    R.DUTY_DEPUTY: "school",
    R.CLASS_TEACHER: "class",
    R.SOCIAL_PEDAGOGUE: "school",
    R.SENIOR_COUNSELLOR: "school",
    R.CANTEEN_MANAGER: "school",
    R.PARENT: "children",
    R.GIFTED_COORDINATOR: "school",
    R.REGIONAL_GIFTED_COORDINATOR: "region",
    R.BADGE_PARTICIPANT: "badge",
    R.BADGE_REPRESENTATIVE: "badge",
    R.BADGE_MENTOR: "badge",
    R.BADGE_EXPERT: "badge",
    R.BADGE_COORDINATOR: "region",
    R.BADGE_CENTRE: "badge",
    R.LIBRARIAN: "school",
    R.EQUIPMENT_OFFICER: "school",
    R.DISTRICT_APPROVER: "region",
    R.REGION_APPROVER: "region",
    R.TUTORING_COORDINATOR: "region",
    # "own": a volunteer's own groups, a council member's own scores; no school, class or
    # student is in this scope (the tutoring service narrows by the user's account)
    R.VOLUNTEER: "own",
    R.COUNCIL_MEMBER: "own",
}


class UnknownPermission(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class Grant:
    role: Role
    region_id: str | None = None
    school_id: str | None = None
    class_pk: int | None = None


@dataclass(slots=True)
class Principal:
    """The signed-in user with everything needed to answer "may they?" without more queries."""

    user_pk: int
    login: str
    full_name: str
    lang: str
    csrf_token: str
    grants: list[Grant]
    # school id -> region id, for the schools of the regions this user is granted
    region_schools: dict[str, str | None] = field(default_factory=dict)
    # (student pk, school id, class pk) of a parent's own children
    children: list[tuple[int, str, int]] = field(default_factory=list)

    @property
    def roles(self) -> set[Role]:
        return {g.role for g in self.grants}

    def _grants_for(self, perm: str) -> Iterable[Grant]:
        try:
            roles = PERMISSIONS[perm]
        except KeyError as err:
            raise UnknownPermission(perm) from err
        return (g for g in self.grants if g.role in roles)

    def can(
        self,
        perm: str,
        *,
        school_id: str | None = None,
        class_pk: int | None = None,
        student_pk: int | None = None,
    ) -> bool:
        """May this user use ``perm`` on the target? With no target: anywhere at all.

        A target is a school, a class of a school, or a student (with its school and class).
        A class teacher's grant covers only their class's students and class, never the whole
        school; a parent's covers only their own children.
        """
        for g in self._grants_for(perm):
            if school_id is None and student_pk is None:
                return True
            if self._covers(g, school_id, class_pk, student_pk):
                return True
        return False

    def _covers(
        self, g: Grant, school_id: str | None, class_pk: int | None, student_pk: int | None
    ) -> bool:
        scope = SCOPE_OF_ROLE[g.role]
        if scope == "all":
            return True
        if scope == "region":
            return school_id is not None and self.region_schools.get(school_id) == g.region_id
        if scope == "school":
            return school_id is not None and school_id == g.school_id
        if scope == "class":
            return (
                school_id is not None
                and school_id == g.school_id
                and class_pk is not None
                and class_pk == g.class_pk
            )
        if scope == "children":
            return student_pk is not None and any(c[0] == student_pk for c in self.children)
        return False

    def schools(self, perm: str) -> set[str] | None:
        """School ids where ``perm`` applies (at least in part); None means every school."""
        out: set[str] = set()
        for g in self._grants_for(perm):
            scope = SCOPE_OF_ROLE[g.role]
            if scope == "all":
                return None
            if scope == "region":
                out |= {s for s, r in self.region_schools.items() if r == g.region_id}
            elif scope in ("school", "class") and g.school_id is not None:
                out.add(g.school_id)
            elif scope == "children":
                out |= {c[1] for c in self.children}
        return out

    def classes(self, perm: str, school_id: str) -> set[int] | None:
        """Class pks of ``school_id`` where ``perm`` applies; None means all of its classes."""
        out: set[int] = set()
        for g in self._grants_for(perm):
            scope = SCOPE_OF_ROLE[g.role]
            if scope == "class":
                if g.school_id == school_id and g.class_pk is not None:
                    out.add(g.class_pk)
            elif scope == "children":
                out |= {c[2] for c in self.children if c[1] == school_id}
            elif self._covers(g, school_id, None, None):
                return None
        return out

    def whole_school(self, perm: str, school_id: str) -> bool:
        """True when ``perm`` covers the whole school (not only some classes or children)."""
        return any(
            SCOPE_OF_ROLE[g.role] not in ("class", "children")
            and self._covers(g, school_id, None, None)
            for g in self._grants_for(perm)
        )
